"""Readers that turn a source (a file, a Slack channel, a mailbox) into `Document`s."""
