-- What an experiment showed when it ended: its arms' predictions, outcomes
-- and primary metric with their intervals, and each arm against live's
-- version (JSON, as GET .../live-metrics answers over the experiment's
-- time). Its traffic is not kept apart once it ends (arm names repeat across
-- experiments), so without this the evidence a person ended it on was lost.
-- NULL: ended before this column, or by archiving the model.
ALTER TABLE experiments ADD COLUMN results TEXT;
