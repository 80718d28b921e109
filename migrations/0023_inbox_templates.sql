-- What the agent inbox answers with: an agent template (its prompt, tools and approval
-- rules), and the knowledge collections customers' answers may come from. NULL
-- collections means the collection for outside readers ('public'), as in a Slack
-- Connect channel: people outside the company never get internal documents by default.
ALTER TABLE tenant_inboxes
    ADD COLUMN agent_template text,
    ADD COLUMN collections text[];
