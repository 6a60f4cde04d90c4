"""Preference pairs for DPO from the sessions, and DPO jobs. No Qt; only ``worker`` imports
torch / transformers / trl / peft."""
