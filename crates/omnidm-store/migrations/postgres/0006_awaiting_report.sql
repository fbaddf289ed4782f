-- Issue 9 item 5: an Exec the device accepted (202) leaves its operation 'awaiting_report'
-- until the Generic Alert 1226 with its correlator arrives, or until this deadline (Unix ms),
-- when the background sweep fails it with 902 report_timeout. NULL in every other state.
ALTER TABLE operations ADD COLUMN report_deadline BIGINT;
CREATE INDEX operations_awaiting_report ON operations (report_deadline)
    WHERE state = 'awaiting_report';
