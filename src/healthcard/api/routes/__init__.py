"""One router per resource (STYLE.md habit 11)."""
