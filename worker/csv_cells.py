"""CSV cells a spreadsheet will not run: text that starts like a formula is prefixed with an apostrophe."""

from __future__ import annotations

# What Excel, LibreOffice and Google Sheets take as the start of a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: object) -> str:
    """``value`` as CSV text; text starting like a formula (``=HYPERLINK(...)``, ``+cmd|...``) gets a leading
    ``'`` so it shows as text; numbers (``-0.5``) stay as they are."""
    text = str(value)
    if not text.startswith(FORMULA_STARTS):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text
