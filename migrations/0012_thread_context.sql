-- Thread context is built from what the app has stored, not re-read from Slack each turn
-- (Slack limits conversations.replies for many apps). This marks a conversation whose
-- earlier messages are all in `messages`: set when the bot was there from the thread's
-- first message (or opened it as an assistant thread), or once it has read the thread
-- from Slack after being mentioned mid-thread. NULL (every thread from before this
-- migration) means "read it from Slack once".
ALTER TABLE conversations ADD COLUMN history_loaded_at timestamptz;

-- An assistant-panel thread's context: the channel (and team) the person was viewing
-- when they opened the panel or last moved, from assistant_thread_started/_context_changed.
ALTER TABLE conversations ADD COLUMN assistant_context jsonb;
