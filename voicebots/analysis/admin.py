"""How a call's analysis reads in the admin (used by the Call admin page)."""
import json

from django.utils.html import format_html, format_html_join

LABELS = (("status", "Status"), ("summary", "Summary"), ("success", "Success"), ("success_reason", "Why"),
          ("error", "Error"), ("completed_at", "Completed"))


def analysis_html(analysis: dict | None) -> str:
    if not analysis:
        return "-"
    rows = [(label, analysis[key]) for key, label in LABELS if analysis.get(key) not in (None, "")]
    if analysis.get("data") is not None:
        rows.append(("Data", format_html("<pre>{}</pre>", json.dumps(analysis["data"], indent=2,
                                                                     ensure_ascii=False))))
    return format_html('<table class="call-analysis">{}</table>',
                       format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))
