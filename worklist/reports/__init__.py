"""The department head's reports: turnaround, SLA and AI performance."""
