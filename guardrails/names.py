"""First-name lists for finding people's names offline.

The lists are the 1990 US Census first names shipped in the `names` package (MIT, public
domain data). They are US-centric: names common elsewhere but rare in the US are missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from spacy.lang.en.stop_words import STOP_WORDS

CENSUS_FIRST_NAME_FILES = ("dist.male.first", "dist.female.first")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# First names that are far more often ordinary words at the start of a sentence or in a
# title ("Will you...", "Grace period", "June 3"): taking them for names would hide
# words the model needs.
AMBIGUOUS_FIRST_NAMES = _words(
    """
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday
    will bill mark grace hope faith joy guy art rose lily ivy iris daisy amber ruby pearl
    crystal dawn summer autumn sky rich hunter chance hazel jade page lane dale dean drew
    gene glen ray rob sue pat jack frank earl king major sterling precious honey angel baby
    sunny star love christian paris china georgia virginia carolina florida india victoria
    austin houston dallas lincoln madison jersey trinity destiny harmony melody misty
    stormy holly heather sandy rocky buck chase cash case sale lee long young price
    miles warren wade carter mason cole clay ford golden green brown white black gray
    france german carry princess royal english america israel egypt kenya asia unit
    """
)
# A name followed by one of these names a place or an organisation ("Marina Fort Street",
# "Russell Investments"), not a person.
PLACE_OR_ORG_WORDS = _words(
    """
    street st road rd avenue ave lane ln drive boulevard blvd way place square sq terrace
    court ct close crescent bypass union extensions park parks gardens hill heights bridge
    inc ltd llc plc gmbh corp corporation company co group holdings investments partners
    bank university college school hospital hotel foundation institute airport station
    """
)
# Capitalised words that end a name rather than continue it ("Thanks John. The ...").
COMMON_CAPITALISED = _words(
    """
    the a an and or but if then thanks thank hi hello hey dear regards best cheers please
    monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    i im i'm we you he she they it this that there here what when where why how
    """
)


@dataclass(frozen=True)
class NameLists:
    first_names: frozenset[str]
    common_words: frozenset[str]
    place_or_org_words: frozenset[str] = field(default=PLACE_OR_ORG_WORDS)

    def is_first_name(self, lower: str) -> bool:
        return lower in self.first_names

    def is_common_word(self, lower: str) -> bool:
        return lower in self.common_words


def load_name_lists() -> NameLists:
    """The census first names less the ambiguous ones; about 5,000 names."""
    package = resources.files("names")
    first: set[str] = set()
    for name in CENSUS_FIRST_NAME_FILES:
        for line in package.joinpath(name).read_text().splitlines():
            if line.strip():
                first.add(line.split()[0].lower())
    common = frozenset(STOP_WORDS) | COMMON_CAPITALISED
    return NameLists(
        first_names=frozenset(first - AMBIGUOUS_FIRST_NAMES - common),
        common_words=common,
    )
