-- Reference (a): copy every column of the day's shard into a new table, nothing else.
-- The floor for any merge that writes the day's rows: reading and writing every byte once.
CREATE TABLE out.ga4_events AS
SELECT * FROM shard.{shard_table}
