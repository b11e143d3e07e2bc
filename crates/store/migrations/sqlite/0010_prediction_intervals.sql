-- Prediction intervals, churn risk and the next order date per customer, and the model of each
-- run. Rows stored before this migration have NULL in every new column (no interval was kept).
ALTER TABLE predictions ADD COLUMN expected_purchases_90d_low REAL;
ALTER TABLE predictions ADD COLUMN expected_purchases_90d_high REAL;
ALTER TABLE predictions ADD COLUMN clv_low REAL;                -- NULL without a spend model
ALTER TABLE predictions ADD COLUMN clv_high REAL;
ALTER TABLE predictions ADD COLUMN churn_risk TEXT;             -- low | medium | high
ALTER TABLE predictions ADD COLUMN next_order_date TEXT;        -- YYYY-MM-DD, NULL beyond the calendar

ALTER TABLE prediction_runs ADD COLUMN model TEXT;              -- bgnbd | mbgnbd | pareto_nbd
ALTER TABLE prediction_runs ADD COLUMN params TEXT;             -- JSON: the model's fit with standard errors
ALTER TABLE prediction_runs ADD COLUMN selection TEXT;          -- JSON: the evidence of --model auto
ALTER TABLE prediction_runs ADD COLUMN interval_level REAL;     -- coverage of the intervals, e.g. 0.9
