"""Parse a model section entry by entry, reusing the entries parsed before.

PySD parses a section in three grammar passes: the section into entries
(``section_elements``), each entry's left-hand side (``element_object``) and
each right-hand side (``components``). The first pass costs as much as the
other two together and the whole takes 0.2 s for the Juárez model, 1.6 s
for World3. Here the first pass is :func:`sd.model.entries.split` (the
grammar's rules applied in linear time, finding exactly its entries), and the
other two are PySD's own classes applied to one entry at a time, memoised by
the entry's text: a process that loads a model again after an edit (``sd run
--watch``) parses only the entries that changed.

The memo holds PySD's parsed objects (never modified after parsing: the
abstract model is built from them by copying references into new
``Abstract*`` objects, and every later step that changes a text works on a
deep copy). It lives in this process only; nothing is written to disk.
:func:`parse_sections` gives up (returns ``False``) on anything unexpected,
and the caller then runs PySD's own parse, which raises its usual errors.
"""
from __future__ import annotations

from collections import OrderedDict

from . import entries as entries_mod

#: Parsed entries kept between loads (an edit-run loop needs one model's worth).
MEMO_SIZE = 20000
_MEMO: OrderedDict = OrderedDict()
_HEADER = object()


def parse_sections(vf) -> bool:
    """Parse every section of ``vf`` (a PySD ``VensimFile`` after
    ``parse(parse_all=False)``) as ``section.parse()`` would; ``False`` if
    a section cannot be split, in which case nothing was changed."""
    parsed = []
    for section in vf.sections:
        found = entries_mod.split(section.content)
        if found is None:
            return False
        parsed.append([_parsed(e) for e in found])
    for section, elements in zip(vf.sections, parsed):
        _assign(section, [e for e in elements if e is not _HEADER])
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)
    return True


def _parsed(entry: entries_mod.Entry):
    """The parsed component of one entry (memoised by its text)."""
    key = (entry.equation, entry.units, entry.documentation, entry.header)
    hit = _MEMO.get(key)
    if hit is not None:
        _MEMO.move_to_end(key)
        return hit
    if entry.header:
        _MEMO[key] = _HEADER
        return _HEADER
    from pysd.translators.vensim.vensim_element import (Component, Constraint, Element,
                                                        TestInput)

    component = Element(entry.equation, entry.units, entry.documentation).parse()
    if isinstance(component, (Component, Constraint, TestInput)):
        component.parse()
    _MEMO[key] = component
    return component


def _assign(section, elements: list) -> None:
    """What ``VensimSection.parse`` leaves on the section, in its order."""
    from pysd.translators.vensim.vensim_element import (Component, Constraint,
                                                        SubscriptRange, TestInput)

    section.subscripts = [e for e in elements if isinstance(e, SubscriptRange)]
    section.components = [e for e in elements if isinstance(e, Component)]
    section.constraints = [e for e in elements if isinstance(e, Constraint)]
    section.test_inputs = [e for e in elements if isinstance(e, TestInput)]
    section.elements = section.subscripts + section.components + section.constraints \
        + section.test_inputs
