-- What the approver is shown of a proposed action, when it differs from what is stored.
-- The stored summary and payload keep the conversation's placeholders (<EMAIL_1>); the
-- approval card shows them as the tenant's guardrail policy says approvers should see
-- them (partially masked by default), computed once when the action is proposed.
-- NULL: show the stored summary and payload as they are.
ALTER TABLE pending_actions ADD COLUMN shown jsonb;
