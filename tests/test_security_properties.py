"""Property tests (Hypothesis): no text in a model file becomes code.

Names, comments, units, subscript names and GET DIRECT string arguments are
generated from quotes, backslashes, escapes (``\\x27``, ``\\N{...}``),
newlines, Unicode line separators, NUL and injection fragments that write a
canary file. For each generated model, loading and translating it (the PySD
translation is built and verified) either refuses it with
:class:`SdInputError` or succeeds; when it succeeds, a run gives the same
numbers as the plain model; the canary never appears.

Example counts are modest (the suite's time budget): each example builds a
translation (~0.3 s).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings, strategies as st  # noqa: E402

from sd.errors import SdInputError  # noqa: E402

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"
BASE = TEACUP.read_text(encoding="utf-8")
CANARY = Path("/tmp") / "sd-hypothesis-canary"
_PAYLOADS = [
    f'""";open("{CANARY}","w");"""', f"''';open('{CANARY}','w');'''",
    f"\\x27) and open(\\x27{CANARY}\\x27,\\x27w\\x27) #", f"') and open('{CANARY}','w') #",
    "\\", "\\N{QUOTATION MARK}", "\\x22\\x22\\x22", "\u2028", "\u2029", "\u0085", "\x00",
    "\n", "\r", "\t", '"', "'", "{UTF-7}", "+ACIAIgAi-", "#", "}", "{", "[", "]", "(", ")",
]
_TEXT = st.lists(st.one_of(st.sampled_from(_PAYLOADS),
                           st.text(alphabet=st.characters(codec="utf-8"), max_size=6)),
                 max_size=6).map("".join)
_SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


@pytest.fixture(scope="module")
def baseline():
    import sd

    return sd.run(sd.load(TEACUP), engine="pysd")["Teacup Temperature"].values


def _try(tmp_path: Path, text: str, baseline=None) -> None:
    """Load and translate ``text``; refuse or behave like the plain model."""
    import sd

    CANARY.unlink(missing_ok=True)
    mdl = tmp_path / "m.mdl"
    mdl.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    (tmp_path / "data.csv").write_text("a,b\n1,70\n", encoding="utf-8")
    try:
        model = sd.load(mdl)
        assert model.translation.is_file()
        if baseline is not None:
            got = sd.run(model, engine="pysd")["Teacup Temperature"].values
            np.testing.assert_allclose(got, baseline, rtol=1e-12)
        event("translated")
    except SdInputError as exc:
        event(f"refused: {str(exc).split(':')[-2][-40:] if ':' in str(exc) else exc}")
    finally:
        assert not CANARY.exists(), f"code from the model ran: {text!r}"


@_SETTINGS
@given(comment=_TEXT, units=_TEXT)
def test_comments_and_units_are_documentation(tmp_path, baseline, comment, units):
    text = BASE.replace("~\tTemperature of the room.", "~\t" + comment.replace("~", "-")
                        .replace("|", "/")) \
        .replace("~\tDegrees Fahrenheit\n\t~\tRoom", "~\t" + units.replace("~", "-")
                 .replace("|", "/") + "\n\t~\tRoom")
    _try(tmp_path, text, baseline)


@_SETTINGS
@given(name=_TEXT)
def test_variable_names(tmp_path, baseline, name):
    quoted = '"' + name.replace('"', '\\"') + '"'
    _try(tmp_path, BASE.replace("Room Temperature", quoted), baseline)


@_SETTINGS
@given(sheet=_TEXT, cell=_TEXT)
def test_get_direct_string_arguments(tmp_path, sheet, cell):
    call = "GET DIRECT CONSTANTS('data.csv', '{}', '{}')".format(sheet.replace("'", "\\x27"),
                                                              cell.replace("'", "\\x27"))
    _try(tmp_path, BASE.replace("\t70\n", f"\t{call}\n"))


@_SETTINGS
@given(sub=_TEXT)
def test_subscript_names(tmp_path, sub):
    quoted = '"' + sub.replace('"', '\\"') + '"'
    text = BASE.replace("Room Temperature=\n\t70",
                        f"{quoted}: a, b\n\t~\t~\t|\n\nSubscripted[{quoted}] = 1\n\t~\tDmnl\n"
                        "\t~\tx\n\t|\n\nRoom Temperature=\n\t70")
    _try(tmp_path, text)
