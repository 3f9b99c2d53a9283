"""Formatting for the validation report."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(share: float | None) -> str:
    """A 0-1 rate as a percentage with one decimal ("93.3%"), or a dash."""
    if share is None:
        return "—"
    return f"{share * 100:.1f}%"
