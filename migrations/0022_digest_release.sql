-- Emails held on a flood digest card can be released by an approver (the card's button):
-- each then gets its draft and approval card. Released emails no longer wait, and are not
-- counted as drafted within the hour, so a release does not hold the next hour's mail.
ALTER TABLE email_intake_gate DROP CONSTRAINT email_intake_gate_outcome_check;
ALTER TABLE email_intake_gate ADD CONSTRAINT email_intake_gate_outcome_check
    CHECK (outcome IN ('drafted', 'held', 'released'));
ALTER TABLE email_digests ADD COLUMN released_by text;  -- Slack user id, the latest release
ALTER TABLE email_digests ADD COLUMN released_at timestamptz;
