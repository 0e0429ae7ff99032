"""More sentences for the corpus: seeded template sentences over a project-written vocabulary.

The 40 hand-written `core.corpus.speech.SENTENCES` cover every common English phone, but a flow
trained on 40 texts could learn the texts rather than the mapping from sound to mouth. The
templates here combine a few hundred words (chosen for bilabials, labiodentals, rounded and open
vowels, clusters) into grammatical, speakable sentences, so the corpus can hold as many different
texts as it needs. Everything comes from the numpy Generator seeded by the caller.
"""

import numpy as np

from core.errors import FlowVQError

__all__ = ["TextError", "TEMPLATES", "WORDS", "template_sentences"]


class TextError(FlowVQError):
    """A sentence request that cannot be met."""
    code = "text"


WORDS: dict[str, tuple[str, ...]] = {
    "name": ("Bob", "Pam", "Mabel", "Fred", "Olive", "Paul", "Maya", "Victor", "Ruth", "Hugo",
             "Bella", "Tom", "June", "Walter", "Ivy", "Martha", "Oscar", "Fiona", "Ben", "Molly"),
    "noun": ("boat", "map", "muffin", "window", "puppy", "mirror", "bottle", "fountain", "pumpkin",
             "violin", "harbor", "mountain", "bubble", "basket", "feather", "blanket", "umbrella",
             "pebble", "balloon", "moon", "ferry", "garden", "wallet", "pillow", "orange", "bamboo",
             "rope", "box", "farm", "river", "zebra", "oven", "lamp", "fiddle", "museum", "bridge"),
    "adjective": ("purple", "warm", "bumpy", "quiet", "huge", "soft", "brave", "pale", "famous",
                  "broken", "muddy", "shiny", "humble", "fluffy", "polished", "mossy", "round", "odd",
                  "bright", "heavy", "frozen", "tiny", "lovely", "plump"),
    "verb_past": ("bought", "moved", "painted", "found", "opened", "dropped", "pushed", "fixed",
                  "borrowed", "wrapped", "cleaned", "measured", "carried", "photographed", "buried",
                  "polished", "sold", "swapped", "flipped", "mended"),
    "verb": ("bring", "move", "paint", "find", "open", "drop", "push", "fix", "borrow", "wrap",
             "clean", "measure", "carry", "bury", "polish", "sell", "swap", "flip", "mend", "keep"),
    "place": ("by the pool", "near the bridge", "in the museum", "on the boat", "under the bamboo",
              "behind the barn", "at the harbor", "up the mountain", "over the fence",
              "beyond the farm", "before noon", "after the storm", "on Monday", "in the morning"),
    # plurals written out (the aligner's dictionary has "puppies", not "puppys"); bamboo has none
    "nouns": ("boats", "maps", "muffins", "windows", "puppies", "mirrors", "bottles", "fountains", "pumpkins",
              "violins", "harbors", "mountains", "bubbles", "baskets", "feathers", "blankets", "umbrellas",
              "pebbles", "balloons", "moons", "ferries", "gardens", "wallets", "pillows", "oranges",
              "ropes", "boxes", "farms", "rivers", "zebras", "ovens", "lamps", "fiddles", "museums", "bridges"),
    "feeling": ("happy", "upset", "surprised", "afraid", "furious", "calm", "amazed", "bored",
                "puzzled", "proud", "worried", "moved"),
}

TEMPLATES: tuple[str, ...] = (
    "{name} {verb_past} the {adjective} {noun} {place}.",
    "Please {verb} my {adjective} {noun}, {name}.",
    "Why did {name} {verb} the {noun} {place}?",
    "The {adjective} {noun} made {name} feel {feeling}.",
    "Maybe {name} will {verb} a {adjective} {noun}.",
    "{name} was {feeling} when the {noun} fell {place}.",
    "Oh, the {noun} is {adjective}, and the {noun} is {adjective}!",
    "We {verb_past} both {adjective} {nouns} {place}.",
)


def _fill(template: str, rng: np.random.Generator) -> str:
    """One template with each ``{slot}`` replaced by a word drawn from `WORDS`; the first letter is
    capitalised."""
    parts = template.split("{")
    out = [parts[0]]
    for part in parts[1:]:
        slot, rest = part.split("}", 1)
        words = WORDS[slot]
        out.append(words[int(rng.integers(len(words)))] + rest)
    sentence = "".join(out)
    return sentence[0].upper() + sentence[1:]


def template_sentences(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct sentences from `TEMPLATES`, in a seeded order.

    Raises `TextError` when ``count`` is negative or the draws cannot find that many distinct ones.
    """
    if count < 0:
        raise TextError(f"the number of sentences must be >= 0, got {count}")
    sentences: dict[str, None] = {}
    attempts = 0
    while len(sentences) < count:
        attempts += 1
        if attempts > 50 * count + 100:
            raise TextError(f"could not draw {count} distinct template sentences; ask for fewer")
        sentences[_fill(TEMPLATES[int(rng.integers(len(TEMPLATES)))], rng)] = None
    return list(sentences)
