"""The email channel: parsing, threading, loop protection and outbound senders."""
