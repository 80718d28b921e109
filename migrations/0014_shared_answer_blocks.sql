-- The Block Kit a private answer gets when its asker shares it with the channel: the
-- same feedback controls as any public answer, computed by the worker that drafted it
-- (the listener that posts the shared copy has no access to the run's sources).
ALTER TABLE private_answers ADD COLUMN public_blocks jsonb;
