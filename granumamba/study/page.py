"""The static questionnaire page of one form: the videos in order, a rating scale per dimension,
and a button that downloads the answers as CSV. No server needed; the same items can go into
any survey tool instead (items.csv)."""

from __future__ import annotations

import html
import json
from pathlib import Path

ANSWER_FIELDS = ("participant", "form", "stimulus_id", "dimension", "rating")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gesture study, form {form}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 760px; margin: 2em auto; padding: 0 1em; color: #222; }}
.item {{ border-top: 1px solid #ddd; padding: 1.2em 0; }}
video {{ width: 100%; max-width: 512px; background: #eee; display: block; }}
fieldset {{ border: none; margin: .6em 0; padding: 0; }}
legend {{ font-weight: 600; margin-bottom: .3em; }}
label {{ margin-right: .9em; white-space: nowrap; }}
#status {{ margin-left: 1em; }}
</style></head>
<body>
<h1>Gesture study</h1>
<p>Watch each video with sound, then answer every question. There are {count} videos. Your answers stay in this page
until you press <b>Download answers</b> at the end and send the file back.</p>
<p><label>Participant code <input id="participant" required></label></p>
{items}
<p><button id="download">Download answers</button><span id="status"></span></p>
<script>
const FORM = {form_json};
const ITEMS = {items_json};
const DIMENSIONS = {dimensions_json};
function csvCell(v) {{ v = String(v); return /[",\\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }}
document.getElementById("download").addEventListener("click", () => {{
  const participant = document.getElementById("participant").value.trim();
  const status = document.getElementById("status");
  if (!participant) {{ status.textContent = "Please enter your participant code first."; return; }}
  const rows = [["participant", "form", "stimulus_id", "dimension", "rating"]];
  let missing = 0;
  for (const id of ITEMS) for (const d of DIMENSIONS) {{
    const checked = document.querySelector(`input[name="${{CSS.escape(id + "__" + d)}}"]:checked`);
    if (!checked) {{ missing++; continue; }}
    rows.push([participant, FORM, id, d, checked.value]);
  }}
  if (missing) {{ status.textContent = missing + " answers are still missing."; return; }}
  const blob = new Blob([rows.map(r => r.map(csvCell).join(",")).join("\\n") + "\\n"], {{type: "text/csv"}});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `answers_form${{FORM}}_${{participant.replace(/[^A-Za-z0-9_-]/g, "_")}}.csv`;
  document.body.appendChild(a); a.click(); a.remove();
  status.textContent = "Downloaded. Thank you!";
}});
</script>
</body></html>
"""


def inline_json(value) -> str:
    """JSON that stays data inside an HTML <script> block: '<', '>' and '&' are written as
    escapes, so no string can close the script or open a comment."""
    text = json.dumps(value)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def write_form_page(path: Path, form: int, order: list[str], dimensions: list[dict], video_prefix: str) -> None:
    blocks = []
    for position, sid in enumerate(order, start=1):
        questions = []
        for d in dimensions:
            options = " ".join(
                f'<label><input type="radio" name="{html.escape(sid + "__" + d["name"])}" value="{value}"> {html.escape(str(text))}</label>'
                for value, text in enumerate(d["scale"], start=1)
            )
            questions.append(f"<fieldset><legend>{html.escape(d['question'])}</legend>{options}</fieldset>")
        blocks.append(
            f'<div class="item" id="item-{html.escape(sid)}"><h3>Video {position}</h3>'
            f'<video controls preload="metadata" src="{html.escape(video_prefix + sid)}.mp4"></video>{"".join(questions)}</div>'
        )
    page = _PAGE.format(
        form=form,
        count=len(order),
        items="\n".join(blocks),
        form_json=inline_json(form),
        items_json=inline_json(order),
        dimensions_json=inline_json([d["name"] for d in dimensions]),
    )
    path.write_text(page, encoding="utf-8")
