"""Sequence-to-sequence problems generated from a seed: addition ("535+61"
-> "596"), reversal ("4071" -> "1704") and sorting ("4071" -> "0147") of
digit strings, as character ids for an encoder-decoder.

Every string is right-padded with spaces to a fixed length (the padded
query "535+61 " and answer "596 " for three digits, as in keras-io's
addition RNN); `reverse=True` feeds the padded query backwards (" 16+535"),
the trick of Sutskever et al. 2014. The decoder is trained with teacher
forcing: its input is the start token "^" followed by the answer shifted
right by one character. The three splits are distinct problems.
"""

import dataclasses

import numpy as np

from dlrecipes.data.description import Data
from dlrecipes.errors import UsageError, choices_message

TASKS = ("addition", "reversal", "sorting")
PAD = " "
START = "^"
# Id 0 is the padding space; the start token is only ever a decoder input.
VOCABULARY = PAD + "0123456789+" + START
MAX_DIGITS = 6


# `--digits 0`: each task's default length (two-digit addition has 10,000
# problems; reversal and sorting need longer strings for as many).
DEFAULT_DIGITS = {"addition": 2, "reversal": 5, "sorting": 5}


def resolve_digits(task, digits):
    """`digits`, or the task's default for 0."""
    return digits or DEFAULT_DIGITS.get(task, 2)


def lengths(task, digits):
    """`(source_length, target_length)`: the padded query and answer."""
    if task == "addition":
        return 2 * digits + 1, digits + 1
    return digits, digits


def distinct_problems(task, digits):
    """How many different queries `task` has with up to `digits` digits:
    ordered pairs of numbers below 10**digits for addition, digit strings
    of 1 to `digits` characters (leading zeros included) otherwise."""
    if task == "addition":
        return 10 ** (2 * digits)
    return sum(10 ** n for n in range(1, digits + 1))


def query(task, digits, index):
    """The query numbered `index` (0 <= index < distinct_problems)."""
    if task == "addition":
        a, b = divmod(int(index), 10 ** digits)
        return f"{a}+{b}"
    index = int(index)
    for n in range(1, digits + 1):
        if index < 10 ** n:
            return str(index).zfill(n)
        index -= 10 ** n
    raise ValueError(f"no {task} query {index} with {digits} digits")


def answer(task, text):
    """The answer to one query."""
    if task == "addition":
        a, b = text.split("+")
        return str(int(a) + int(b))
    if task == "reversal":
        return text[::-1]
    return "".join(sorted(text))


def encode(strings, length, characters=VOCABULARY, start_id=None):
    """Strings -> `(n, length)` int32 ids in `characters` (id 0 pads),
    right-padded. A string longer than `length`, or with a character
    outside `characters` or equal to the start token (`characters[
    start_id]`, by default "^"), raises `UsageError` (a `ValueError`)."""
    if start_id is None:
        start_id = characters.find(START)
    valid = "".join(c for i, c in enumerate(characters) if i != start_id)
    ids = np.zeros((len(strings), length), "int32")
    for row, text in enumerate(strings):
        if len(text) > length:
            raise UsageError(f"{text!r} has {len(text)} characters; at most "
                             f"{length} fit")
        for col, char in enumerate(text):
            index = characters.find(char)
            if index < 0 or index == start_id:
                raise UsageError(f"{text!r}: character {char!r} is not in "
                                 f"the vocabulary; valid characters: "
                                 f"{valid!r}")
            ids[row, col] = index
    return ids


def decode(ids, characters=VOCABULARY):
    """`(n, length)` ids -> strings, trailing padding (id 0) removed."""
    return ["".join(characters[int(i)] for i in row).rstrip(characters[0])
            for row in np.asarray(ids)]


def decoder_inputs(targets):
    """Teacher forcing: the start token, then the answer shifted right."""
    start = np.full((len(targets), 1), VOCABULARY.index(START), "int32")
    return np.concatenate([start, targets[:, :-1]], axis=1)


@dataclasses.dataclass
class Seq2SeqData(Data):
    """`Data` of an encoder-decoder: `train`/`val`/`test` are `((source,
    decoder input), target)` id arrays.

    Attributes:
        task, digits, reverse: the problem, as configured.
        source_length, target_length: padded lengths of query and answer.
        vocabulary: the characters, indexed by id.
        train_queries, test_queries, test_answers: the raw strings (the
            source ids are the queries, reversed with `reverse`).
    """

    task: str = "addition"
    digits: int = 2
    reverse: bool = False
    source_length: int = 0
    target_length: int = 0
    vocabulary: str = VOCABULARY
    train_queries: tuple = ()
    test_queries: tuple = ()
    test_answers: tuple = ()


def check_sizes(task, digits, train_size, test_size):
    """Refuse more problems than `task` has (one line, with the limit)."""
    if task not in TASKS:
        raise UsageError("--task: " + choices_message("task", task, TASKS))
    if not 0 <= digits <= MAX_DIGITS:
        raise UsageError(f"--digits must be between 0 (the task's default) "
                         f"and {MAX_DIGITS}. Received: digits={digits}")
    digits = resolve_digits(task, digits)
    available = distinct_problems(task, digits)
    if train_size + test_size > available:
        what = (f"--train-size {train_size} and --test-size {test_size}: "
                f"{task} with {digits} digit{'s' if digits > 1 else ''} "
                f"has only {available:,} distinct problems")
        if test_size >= available:
            raise UsageError(f"{what}; ask for fewer (--test-size below "
                             f"{available:,}), or more --digits")
        raise UsageError(f"{what}; ask for at most "
                         f"{available - test_size:,} training problems "
                         "(or more --digits)")


def seq2seq_data(task, digits, train_size, test_size, val_fraction=0.1,
                 reverse=False, seed=0):
    """`Seq2SeqData` of `train_size + test_size` distinct problems drawn
    with `seed`; `val_fraction` of the training problems validate."""
    check_sizes(task, digits, train_size, test_size)
    digits = resolve_digits(task, digits)
    rng = np.random.default_rng([seed, TASKS.index(task), digits])
    indices = rng.choice(distinct_problems(task, digits),
                         train_size + test_size, replace=False)
    queries = [query(task, digits, i) for i in indices]
    answers = [answer(task, q) for q in queries]
    source_length, target_length = lengths(task, digits)
    sources = encode(queries, source_length)
    if reverse:
        sources = sources[:, ::-1].copy()
    targets = encode(answers, target_length)
    n_val = int(round(train_size * val_fraction))
    n_fit = train_size - n_val

    def split(rows):
        return ((sources[rows], decoder_inputs(targets[rows])),
                targets[rows])

    train = split(slice(0, n_fit))
    val = split(slice(n_fit, train_size)) if n_val else None
    test = split(slice(train_size, None))
    return Seq2SeqData(
        train, val, test, input_shape=(source_length,),
        num_classes=len(VOCABULARY), source=task, task=task, digits=digits,
        reverse=reverse, source_length=source_length,
        target_length=target_length, train_queries=tuple(queries[:n_fit]),
        test_queries=tuple(queries[train_size:]),
        test_answers=tuple(answers[train_size:]))


# --- scores and classical baselines (NumPy) ----------------------------------

def sequence_scores(predicted, targets):
    """`{"exact_match", "char_accuracy"}` of `(n, length)` predicted ids
    against target ids: the fraction of answers right in every position,
    and of positions right (the padding after a short answer included, as
    in keras-io's addition example)."""
    predicted, targets = np.asarray(predicted), np.asarray(targets)
    right = predicted == targets
    return {"exact_match": float(right.all(axis=1).mean()),
            "char_accuracy": float(right.mean())}


def majority_baseline(train_targets, num_test):
    """The most frequent training character at every answer position,
    for `num_test` answers."""
    columns = [np.bincount(column).argmax() for column in train_targets.T]
    return np.tile(np.asarray(columns, "int32"), (num_test, 1))


def nearest_neighbour_baseline(train_sources, train_targets, test_sources,
                               chunk=512):
    """The answer of the training query nearest to each test query (the
    most equal characters position by position; the first one on ties):
    a lookup table that generalises by resemblance."""
    answers = []
    for start in range(0, len(test_sources), chunk):
        part = test_sources[start:start + chunk]
        equal = (part[:, None, :] == train_sources[None, :, :]).sum(-1)
        answers.append(train_targets[equal.argmax(axis=1)])
    return np.concatenate(answers)
