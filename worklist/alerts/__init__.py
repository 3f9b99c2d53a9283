"""Critical-finding alerts: lifecycle, escalation, the charge technologists' board."""
