"""Sanitize: vectorized rules decide which ticks are stored and which are rejected."""

from warehouse.sanitize.rules import RULES, Policy, SanitizeConfig, Sanitizer, SanitizeResult

__all__ = ["RULES", "Policy", "SanitizeConfig", "SanitizeResult", "Sanitizer"]
