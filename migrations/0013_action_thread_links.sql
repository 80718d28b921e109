-- The requesting thread's permalink, looked up once when the approval request is posted
-- and reused by every later refresh of the approval message: one chat.getPermalink per
-- action instead of one per update (bench/approvals.py).
ALTER TABLE pending_actions ADD COLUMN thread_link text;
