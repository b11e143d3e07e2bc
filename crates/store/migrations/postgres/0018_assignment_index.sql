-- Segment assignments lose their index by customer key. Each segmentation run adds a row for every
-- customer, and the index took each run's rows at places scattered over all earlier runs'
-- entries, so saving a run slowed down as runs accumulated. The one read by customer (a
-- customer's profile) looks the customer up in each run through the primary key (run_id, ckey).
DROP INDEX segment_assignments_customer;
