"""HubSpot CRM as agent tools: contacts, companies and deals read; notes and stages written."""
