-- Fitted uplift models, one per goal (the latest fit replaces the previous one): the model as
-- JSON (retain-uplift's UpliftModel), its evaluation on held-out campaigns as JSON (NULL when
-- there was no campaign to hold out), and what it was fitted on. `retain plan` ranks a goal's
-- candidates by the model's predicted uplift when one is stored.
CREATE TABLE uplift_models (
    goal        TEXT PRIMARY KEY,
    learner     TEXT NOT NULL,      -- t | x
    seed        BIGINT NOT NULL,
    examples    BIGINT NOT NULL,   -- members fitted on
    campaigns   BIGINT NOT NULL,   -- campaigns fitted on
    evaluation  TEXT,               -- JSON, NULL without held-out campaigns
    model       TEXT NOT NULL,      -- JSON
    fitted_at   BIGINT NOT NULL    -- Unix seconds
);
