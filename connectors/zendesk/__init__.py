"""Zendesk Support as agent tools: tickets searched and read; comments and status written."""
