-- Approvals show the effect and bind to exactly what was shown (issue 19, section 2).

-- What the system said just before the card was posted: the record the action changes
-- (a deal's name), its change as people read it (Stage: Contract sent -> Closed won),
-- and the values execution reads again before it runs (the stale check); or why it
-- could not be read. NULL for tools that offer no preview.
ALTER TABLE pending_actions ADD COLUMN preview jsonb;

-- Each edit makes a new version; shown_hash is the hash of the arguments as the card
-- shows them (and as they run), canonical JSON; versioned_at is when this version was
-- made. An approval records the version and hash it approved, and execution runs only
-- if what it runs still hashes to that.
ALTER TABLE pending_actions ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE pending_actions ADD COLUMN shown_hash text;
ALTER TABLE pending_actions ADD COLUMN versioned_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE pending_actions ADD COLUMN approved_version integer;
ALTER TABLE pending_actions ADD COLUMN approved_hash text;
