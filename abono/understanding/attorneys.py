"""An attorney's details in what a customer wrote: name, firm, phone, email (any may be absent).

"My lawyer is Laura Chen of Chen & Park LLP, 312-555-0188" → name "Laura Chen", firm
"Chen & Park LLP", phone "+13125550188". "Mi abogada es la licenciada Marta Ruiz del despacho
Ruiz Abogados, 787 555 0142" → "Marta Ruiz", "Ruiz Abogados", "+17875550142". A name is read
only where the message names it after the attorney ("my attorney is …", "attorney …",
"mi abogado …"), written with capitals; nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A capitalized word of a name, accents and hyphens included ("José", "O'Neil", "Díaz-Ruiz").
_WORD = r"[A-ZÁÉÍÓÚÑÜ][a-záéíóúñü'’-]+"
_NAME = rf"{_WORD}(?:\s+(?:de\s+la\s+|de\s+|del\s+|van\s+|von\s+)?{_WORD}){{0,3}}"
_TITLE = (
    r"(?:(?:is|es|named|called|se llama|llamad[oa])\s+)?"
    r"(?:(?:el|la)\s+)?(?:(?:mr|mrs|ms|miss|dr|lic|licenciad[oa]|attorney|atty)\.?\s+)?"
)
_AFTER_ROLE = re.compile(
    rf"\b(?:attorney|lawyer|counsel|abogad[oa]|atty\.?)\b[\s,:]*{_TITLE}(?P<name>{_NAME})"
)
_ESQ = re.compile(rf"(?P<name>{_NAME}),?\s+Esq\b")
_FIRM_WORDS = (
    r"(?:Law\s+(?:Firm|Group|Offices?|Center)|LLP|L\.L\.P\.|PLLC|LLC|P\.?C\.|"
    r"(?:&|and)\s+Associates|Legal(?:\s+(?:Group|Services|Aid))?|Abogados|y\s+Asociados)"
)
_FIRM_TAIL = re.compile(
    rf"(?P<firm>(?:{_WORD}|[A-Z]{{2,}})(?:\s*(?:&|and|y|,)?\s*(?:{_WORD}|[A-Z]{{2,}}))*"
    rf"\s*,?\s+{_FIRM_WORDS})"
)
_FIRM_HEAD = re.compile(rf"\b(?:Bufete|Despacho)\s+(?P<firm>(?:{_WORD}\s*(?:y\s+)?){{1,4}})")
_PHONE = re.compile(r"(?<!\d)(?:\+?1[\s.-]?)?\(?(\d{3})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})(?!\d)")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Words a name never starts with: what follows "my lawyer" when no name is given.
_NOT_NAMES = frozenset(
    {
        "Is",
        "Will",
        "Said",
        "Says",
        "Told",
        "Has",
        "The",
        "And",
        "Please",
        "Dijo",
        "Me",
        "Les",
        "Se",
        "Va",
        "Tiene",
        "Y",
    }
)


@dataclass(frozen=True)
class AttorneyDetails:
    name: str | None = None
    firm: str | None = None
    phone: str | None = None  # E.164 (+1 and ten digits)
    email: str | None = None

    @property
    def given(self) -> bool:
        return any((self.name, self.firm, self.phone, self.email))


def attorney_details(text: str) -> AttorneyDetails:
    """What the customer said about their attorney; fields they did not give are None."""
    firm = _firm(text)
    return AttorneyDetails(
        name=_name(text, firm),
        firm=firm,
        phone=_phone(text),
        email=_email(text),
    )


def _name(text: str, firm: str | None) -> str | None:
    for pattern in (_AFTER_ROLE, _ESQ):
        for found in pattern.finditer(text):
            words = found.group("name").split()
            while words and words[0] in _NOT_NAMES:
                words = words[1:]
            # A firm's own words ("Chen & Park LLP") are not the person's name.
            while words and firm and words[-1] in firm.split() and len(words) > 2:
                words = words[:-1]
            name = " ".join(words)
            if name and (firm is None or name != firm) and len(name) <= 120:
                return name
    return None


def _firm(text: str) -> str | None:
    found = _FIRM_TAIL.search(text)
    if found is not None:
        firm = found.group("firm").strip(" ,")
        # "of Chen & Park LLP": the words before the firm's name are the sentence's.
        firm = re.sub(r"^(?:Of|From|At|With|Del?|En)\s+", "", firm)
        return firm[:160]
    found = _FIRM_HEAD.search(text)
    if found is not None:
        return found.group("firm").strip()[:160]
    return None


def _phone(text: str) -> str | None:
    found = _PHONE.search(text)
    return f"+1{''.join(found.groups())}" if found else None


def _email(text: str) -> str | None:
    found = _EMAIL.search(text)
    return found.group(0).lower()[:254] if found else None
