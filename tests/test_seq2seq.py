"""The sequence-to-sequence pieces: generated problems (distinct, disjoint
splits, answers, input reversal, teacher forcing), scores and baselines,
the three encoder-decoders (causal decoders), greedy decoding against a
step-by-step reference, `translator.keras` through `dlrecipes.load_model`,
attention maps and the report's files."""

import json
import os

import keras
import numpy as np
import pytest

import dlrecipes
from dlrecipes.data import seq2seq as problems
from dlrecipes.errors import UsageError
from dlrecipes.models import seq2seq as models
from dlrecipes.models.translator import GreedyTranslator

START_ID = problems.VOCABULARY.index(problems.START)


# --- problems -----------------------------------------------------------------

@pytest.mark.parametrize("task, digits, count", [
    ("addition", 1, 100), ("addition", 2, 10_000), ("reversal", 2, 110),
    ("sorting", 3, 1110)])
def test_queries_enumerate_every_distinct_problem(task, digits, count):
    assert problems.distinct_problems(task, digits) == count
    if count <= 10_000:
        queries = {problems.query(task, digits, i) for i in range(count)}
        assert len(queries) == count
        source_length, _ = problems.lengths(task, digits)
        assert max(len(q) for q in queries) == source_length
    if task != "addition":
        with pytest.raises(ValueError, match="no .* query"):
            problems.query(task, digits, count)


def test_answers():
    assert problems.answer("addition", "535+61") == "596"
    assert problems.answer("addition", "99+99") == "198"
    assert problems.answer("reversal", "4071") == "1704"
    assert problems.answer("sorting", "4071") == "0147"
    for task in problems.TASKS:
        for digits in (1, 3, 6):
            _, target_length = problems.lengths(task, digits)
            largest = problems.distinct_problems(task, digits) - 1
            text = problems.query(task, digits, largest)
            assert len(problems.answer(task, text)) == target_length


def test_encode_decode_round_trip_and_refusals():
    ids = problems.encode(["535+61", "7"], 7)
    assert ids.shape == (2, 7) and ids.dtype == np.int32
    assert ids[1, 1:].tolist() == [0] * 6  # right-padded with spaces
    assert problems.decode(ids) == ["535+61", "7"]
    with pytest.raises(UsageError, match="at most 3 fit"):
        problems.encode(["1234"], 3)
    with pytest.raises(UsageError, match="'x' is not in the vocabulary"):
        problems.encode(["1x2"], 5)
    with pytest.raises(UsageError, match="'\\^' is not in the vocabulary"):
        problems.encode(["^1"], 5)


def test_splits_are_distinct_reversed_and_teacher_forced():
    data = problems.seq2seq_data("addition", 2, 400, 100, val_fraction=0.25,
                                 seed=3)
    (src, dec_in), tgt = data.train
    assert src.shape == (300, 5) and tgt.shape == (300, 3)
    assert data.val[1].shape == (100, 3) and data.test[1].shape == (100, 3)
    keys = [set(map(bytes, part[0][0])) for part in
            (data.train, data.val, data.test)]
    assert sum(map(len, keys)) == 500  # 500 distinct problems
    assert not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    # Teacher forcing: the start token, then the answer shifted right.
    assert (dec_in[:, 0] == START_ID).all()
    np.testing.assert_array_equal(dec_in[:, 1:], tgt[:, :-1])
    # The ids are the queries and their answers.
    queries = problems.decode(data.test[0][0])
    assert queries == list(data.test_queries)
    assert problems.decode(data.test[1]) == [
        problems.answer("addition", q) for q in queries]
    # --reverse reads the same padded queries backwards.
    backwards = problems.seq2seq_data("addition", 2, 400, 100,
                                      val_fraction=0.25, seed=3,
                                      reverse=True)
    np.testing.assert_array_equal(backwards.test[0][0],
                                  data.test[0][0][:, ::-1])
    np.testing.assert_array_equal(backwards.test[1], data.test[1])
    # The seed decides the problems.
    other = problems.seq2seq_data("addition", 2, 400, 100, seed=4)
    assert other.test_queries != data.test_queries


def test_digits_zero_is_each_task_default():
    assert [problems.resolve_digits(t, 0) for t in problems.TASKS] == [2, 5,
                                                                       5]
    assert problems.resolve_digits("sorting", 3) == 3
    data = problems.seq2seq_data("sorting", 0, 50, 10)
    assert data.digits == 5 and data.source_length == 5


def test_every_problem_can_be_drawn():
    data = problems.seq2seq_data("reversal", 2, 100, 10, val_fraction=0.0)
    assert data.val is None
    assert len(set(data.train_queries) | set(data.test_queries)) == 110


@pytest.mark.parametrize("args, message", [
    (("addition", 1, 95, 10), "ask for at most 90 training problems"),
    (("addition", 1, 1, 100), "ask for fewer (--test-size below 100)"),
    (("addition", 7, 10, 10), "--digits must be between 0"),
    (("reversal", 0, 111_110, 1), "reversal with 5 digits has only"),
    (("division", 2, 10, 10), "valid choices: addition, reversal, sorting"),
])
def test_check_sizes(args, message):
    with pytest.raises(UsageError, match=message.replace(
            "(", "\\(").replace(")", "\\)")):
        problems.check_sizes(*args)


# --- scores and baselines -----------------------------------------------------

def test_sequence_scores():
    truth = np.array([[1, 2, 0], [3, 4, 5]])
    guess = np.array([[1, 2, 0], [3, 9, 5]])
    assert problems.sequence_scores(guess, truth) == {
        "exact_match": 0.5, "char_accuracy": 5 / 6}


def test_baselines():
    train_src = np.array([[1, 2, 3], [4, 5, 6], [1, 5, 6]])
    train_tgt = np.array([[7, 0], [8, 0], [8, 1]])
    test_src = np.array([[4, 5, 9], [1, 2, 3]])
    np.testing.assert_array_equal(
        problems.nearest_neighbour_baseline(train_src, train_tgt, test_src,
                                            chunk=1),
        [[8, 0], [7, 0]])
    np.testing.assert_array_equal(problems.majority_baseline(train_tgt, 2),
                                  [[8, 0], [8, 0]])


# --- models -------------------------------------------------------------------

def _model(kind, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return models.build_seq2seq(kind, len(problems.VOCABULARY), 5, 3,
                                **{**dict(units=16, embedding_dim=8,
                                          num_heads=2), **kwargs})


def _ids(shape, seed):
    return np.random.default_rng(seed).integers(
        0, len(problems.VOCABULARY) - 1, shape).astype("int32")


@pytest.mark.backends
@pytest.mark.parametrize("kind", models.MODELS)
def test_decoders_are_causal(kind):
    model = _model(kind, num_layers=2)
    assert models.model_kind(model) == kind
    src, dec = _ids((4, 5), 1), _ids((4, 3), 2)
    base = keras.ops.convert_to_numpy(model([src, dec]))
    assert base.shape == (4, 3, len(problems.VOCABULARY))
    np.testing.assert_allclose(base.sum(-1), 1.0, atol=1e-5)
    changed = dec.copy()
    changed[:, 1:] = _ids((4, 2), 3)
    out = keras.ops.convert_to_numpy(model([src, changed]))
    np.testing.assert_allclose(out[:, 0], base[:, 0], atol=1e-5)
    assert not np.allclose(out[:, 1:], base[:, 1:], atol=1e-4)
    # Every position reads the source.
    other = keras.ops.convert_to_numpy(model([_ids((4, 5), 4), dec]))
    assert not np.allclose(other[:, 0], base[:, 0], atol=1e-4)


def _greedy_reference(model, source):
    """Greedy decoding, one `predict` per step, in numpy."""
    tokens = np.full((len(source), 3), START_ID, "int32")
    out = []
    for step in range(3):
        probs = model.predict([source, tokens], verbose=0)
        out.append(probs[:, step].argmax(-1))
        if step < 2:
            tokens[:, step + 1] = out[-1]
    return np.stack(out, axis=1)


@pytest.mark.backends
@pytest.mark.parametrize("kind", models.MODELS)
def test_greedy_translator_matches_stepwise_decoding_and_reloads(kind,
                                                                 tmp_path):
    model = _model(kind)
    # Sharpen the random model so that its argmaxes depend on the inputs.
    model.layers[-1].set_weights([w * 20 for w in
                                  model.layers[-1].get_weights()])
    translator = GreedyTranslator(model, problems.VOCABULARY,
                                         START_ID, reverse=True)
    queries = ["12+34", "9+9", "0+0", "7+70"]
    ids = translator.encode(queries)
    np.testing.assert_array_equal(ids, problems.encode(queries, 5))
    got = keras.ops.convert_to_numpy(translator(ids))
    expected = _greedy_reference(model, ids[:, ::-1].copy())
    np.testing.assert_array_equal(got, expected)
    assert translator.translate(queries) == problems.decode(expected)
    path = os.path.join(tmp_path, "translator.keras")
    translator.save(path)
    loaded = dlrecipes.load_model(path)
    assert isinstance(loaded, GreedyTranslator)
    assert loaded.reverse and loaded.characters == problems.VOCABULARY
    assert loaded.translate(queries) == translator.translate(queries)
    with pytest.raises(ValueError, match="at most 5 fit"):
        loaded.translate(["123+456"])
    with pytest.raises(ValueError, match="'a' is not in the vocabulary"):
        loaded.translate(["1+a"])


@pytest.mark.backends
@pytest.mark.parametrize("kind", models.ATTENTION_MODELS)
def test_attention_maps(kind):
    model = _model(kind, num_layers=2)
    maps = models.attention_maps(model, _ids((2, 5), 1), _ids((2, 3), 2))
    assert maps.shape == (2, 3, 5)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    assert (maps >= 0).all()


def test_plain_lstm_has_no_attention():
    with pytest.raises(ValueError, match="no attention"):
        models.attention_maps(_model("lstm"), _ids((1, 5), 1),
                              _ids((1, 3), 2))


def test_report_files_and_figures(tmp_path):
    data = problems.seq2seq_data("addition", 2, 200, 40, seed=0)
    model = _model("lstm-attention")
    metrics = models.seq2seq_report(model, data, str(tmp_path))
    for name in ("translator.keras", "examples.txt", "attention.png"):
        assert os.path.getsize(os.path.join(tmp_path, name)) > 0
    translator = dlrecipes.load_model(os.path.join(tmp_path,
                                                   "translator.keras"))
    answers = translator.translate(data.test_queries)
    assert metrics["test_exact_match"] == np.mean(
        [a == b for a, b in zip(answers, data.test_answers)])
    assert metrics["examples"] == 40
    lines = open(os.path.join(tmp_path, "examples.txt")).read().splitlines()
    assert len(lines) == 30 and lines[0].startswith(data.test_queries[0])
    for key in ("test_char_accuracy", "test_1nn_exact_match",
                "test_1nn_char_accuracy", "test_majority_exact_match",
                "test_majority_char_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    json.dumps(metrics)


def test_a_run_answers_raw_strings_and_refuses_explain_and_ensemble(
        tmp_path, capsys, monkeypatch):
    """One quick run through the CLI: its `translator.keras` answers raw
    queries as the report scored them; `explain` and `ensemble` (models of
    one input) refuse it in one line, exit 2, writing nothing."""
    from conftest import metrics, run_dir_of
    from dlrecipes.cli import main

    out = str(tmp_path / "runs")
    assert main(["run", "sequence-to-sequence", "--epochs", "1", "--units",
                 "8", "--train-size", "200", "--test-size", "50",
                 "--model", "lstm-attention", "--reverse", "--output-dir",
                 out, "--verbose", "0"]) == 0
    run = run_dir_of(out, "sequence-to-sequence")
    found = metrics(run)
    translator = dlrecipes.load_model(os.path.join(run, "translator.keras"))
    assert translator.reverse
    data = problems.seq2seq_data("addition", 2, 200, 50, reverse=True)
    answers = translator.translate(data.test_queries)
    assert found["test_exact_match"] == np.mean(
        [a == b for a, b in zip(answers, data.test_answers)])
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(run, copy)  # a second finished run of the same config
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    capsys.readouterr()
    for argv, message in (
            (["explain", run], "explain's methods explain models of one "
             "input"),
            (["ensemble", run, copy], "an ensemble combines models of one "
             "input; ")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert sorted(os.listdir(tmp_path)) == before
