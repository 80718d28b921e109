"""Google Calendar (free/busy, events; invites written) and Gmail (threads read) as agent tools."""
