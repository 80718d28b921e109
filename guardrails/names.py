"""Name lists for finding people's names offline.

The lists are the 1990 US Census first names and surnames shipped in the `names` package
(MIT, public domain data): about 5,000 first names and 89,000 surnames. They are
US-centric; the name tagger (person_tagger.py) uses them as one clue among several, so a
name missing from them can still be found by its shape and context.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

CENSUS_FIRST_NAME_FILES = ("dist.male.first", "dist.female.first")
CENSUS_SURNAME_FILE = "dist.all.last"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that are first names too but, written alone, far more often mean what they say
# at the start of a sentence or a line ("May will be busier", "Regards,", "Grace
# period"). A name made only of these is not taken for a name; "May Chen" still is.
# General English, chosen by hand, not from the evaluation corpus.
NOT_NAMES_ALONE = _words(
    """
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday
    hi hello hey dear thanks thank regards best cheers sincerely yours please sorry welcome
    will bill mark grace hope faith joy guy art rose lily ivy iris daisy amber ruby pearl
    crystal dawn summer autumn sky rich hunter chance hazel jade page lane dale dean drew
    gene glen ray rob sue pat jack frank earl king major sterling precious honey angel baby
    sunny star love christian paris china georgia virginia carolina florida india victoria
    austin houston dallas lincoln madison jersey trinity destiny harmony melody misty
    holly heather sandy rocky buck chase cash case sale long young price miles
    warren wade carter mason cole clay ford golden green brown white black gray
    """
)


# English's closed word classes (question words, pronouns, determiners, auxiliaries,
# prepositions, conjunctions): capitalised at the start of a question they look like a
# name to the tagger ("Which regions do we ship to?"), but never are one on their own.
FUNCTION_WORDS = _words(
    """
    what which who whom whose when where why how whatever whichever whoever
    i me my mine we us our ours you your yours he him his she her hers it its they them
    their theirs this that these those there here
    a an the some any each every no none all both either neither other another such
    is are was were be been being am do does did done have has had having
    can could shall should will would may might must need
    if then than because since while unless until although though whether
    and or nor but so yet also just only even still not
    of in on at by for from to into onto with without about above below after before
    between through during over under again further once
    """
)


@dataclass(frozen=True)
class NameLists:
    first_names: frozenset[str]  # lower case
    surnames: frozenset[str]  # lower case
    not_names: frozenset[str] = NOT_NAMES_ALONE | FUNCTION_WORDS


def load_name_lists() -> NameLists:
    package = resources.files("names")

    def read(name: str) -> frozenset[str]:
        lines = package.joinpath(name).read_text().splitlines()
        return frozenset(line.split()[0].lower() for line in lines if line.strip())

    return NameLists(
        first_names=frozenset().union(*(read(n) for n in CENSUS_FIRST_NAME_FILES)),
        surnames=read(CENSUS_SURNAME_FILE),
    )
