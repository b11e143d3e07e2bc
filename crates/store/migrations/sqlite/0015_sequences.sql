-- Campaign sequences: the A/B variant (and its template) drawn for each recipient when the plan
-- was made, and the follow-up steps created so far, each sent under its own ledger campaign id.
CREATE TABLE campaign_variants (
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    variant     TEXT NOT NULL,
    template    TEXT NOT NULL,
    PRIMARY KEY (campaign_id, customer_id)
);

CREATE TABLE campaign_steps (
    campaign_id TEXT NOT NULL,
    step        INTEGER NOT NULL,      -- 1, 2, … (the first email is step 0)
    ledger_id   TEXT NOT NULL UNIQUE,  -- <campaign id>.s<step>: the sends' campaign_id
    template    TEXT NOT NULL,
    approved    INTEGER NOT NULL,      -- 1: may be sent (the sequence was approved, or this step)
    recipients  INTEGER NOT NULL,      -- recipients the step matched when it was created
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, step)
);
