"""Instruction tuning on tiny random Llamas: prompts and answer masks, truncation, parsing, invalid outputs,
constrained decoding, label scoring with a reused KV cache, zero-shot and the adapter cache."""

import itertools

import numpy as np
import pytest
import torch

from llmclf.config import ConfigError, InstructionConfig
from llmclf.analysis.metrics import classification_metrics
from llmclf.study.experiment import fit_and_evaluate
from llmclf.approaches.instruction import (AnswerCollator, AnswerLoss, InstructionClassifier, label_marginals,
                                multi_label_continuations, score_continuations,
                                score_continuations_full)
from llmclf.approaches.prompts import AnswerConstraint, PromptBuilder, parse_answer, parse_label

from conftest import TOPICS

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = sorted(TOPICS)  # chemistry, electricity, mechanics


@pytest.fixture(scope="module")
def tokenizer(label_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(label_llama)


def builder(tokenizer, multi_label=False, **kw):
    cfg = InstructionConfig()
    args = dict(labels=LABELS, multi_label=multi_label, task_description=cfg.task_description,
                prompt_template=cfg.prompt_template, max_length=64)
    return PromptBuilder(tokenizer, **{**args, **kw})


def make_clf(label_llama, **kw):
    defaults = dict(model=str(label_llama), max_length=64, batch_size=4, eval_batch_size=8, epochs=1.0,
                    learning_rate=1e-3)
    return InstructionClassifier(InstructionConfig(**{**defaults, **kw}), str(label_llama))


# ---- prompts and answers


def test_prompt_is_the_filled_template_in_the_chat_template(tokenizer):
    b = builder(tokenizer)
    text = b.decode(b.prompt_ids(["acid polymer catalyst"])[0])
    assert text.startswith("<|im_start|> user classify")
    assert "chemistry , electricity , mechanics" in text and "text : acid polymer catalyst" in text
    assert text.endswith("<|im_end|> <|im_start|> assistant")  # the generation prompt


def test_plain_prompt_without_chat_template_ends_with_answer(tokenizer):
    b = builder(tokenizer, use_chat_template=False)
    text = b.decode(b.prompt_ids(["acid"])[0])
    assert "<|im_start|>" not in text and text.endswith("answer :")


def test_descriptions_are_shown_and_required(tokenizer):
    descriptions = {l: f"about {w.split()[0]}" for l, w in TOPICS.items()}
    b = builder(tokenizer, label_verbalizer="descriptions", label_descriptions=descriptions)
    assert "- chemistry : about acid" in b.decode(b.prompt_ids(["x"])[0])
    with pytest.raises(ValueError, match="no description for \\['mechanics'\\]"):
        builder(tokenizer, label_verbalizer="descriptions", label_descriptions={"chemistry": "a", "electricity": "b"})


def test_answers_are_label_names_in_label_order_ending_with_eos(tokenizer):
    b = builder(tokenizer, multi_label=True)
    ids = b.answer_ids([2, 0])
    assert ids[-1] == tokenizer.eos_token_id
    assert b.decode(ids[:-1]) == "chemistry ; mechanics"  # word-level tokenizer: spaces between tokens
    assert b.answer_text([2, 0]) == "chemistry; mechanics"
    with pytest.raises(ValueError):
        builder(tokenizer).answer_ids([0, 1])  # single-label answers have one label


@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_only_the_answer_and_its_eos_are_supervised(label_llama, pad_is_eos):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(label_llama)
    if pad_is_eos:
        tok.pad_token = tok.eos_token
    b = builder(tok)
    short, long = b.training_example("acid", [0]), b.training_example("gear shaft spring lever valve", [2])
    batch = AnswerCollator(tok.pad_token_id)([short, long])
    answer = b.answer_ids([0])
    n_prompt = len(short["input_ids"]) - len(answer)
    labels, ids = batch["labels"][0].tolist(), batch["input_ids"][0].tolist()
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:n_prompt + len(answer)] == answer and answer[-1] == tok.eos_token_id
    pad = len(long["input_ids"]) - len(short["input_ids"])
    assert pad > 0 and labels[-pad:] == [-100] * pad  # padding is not supervised ...
    assert ids[-pad:] == [tok.pad_token_id] * pad and batch["attention_mask"][0, -pad:].sum() == 0
    # ... but the EOS is, even when its id is the pad id
    assert labels[n_prompt + len(answer) - 1] == tok.eos_token_id
    assert batch["labels"][1].tolist() == long["labels"]  # the longest row is unpadded


@pytest.mark.parametrize("share_prefix", [False, True])
def test_answer_only_loss_equals_the_causal_lm_loss(label_llama, tokenizer, share_prefix):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(label_llama)
    b = builder(tokenizer)
    batch = AnswerCollator(tokenizer.pad_token_id)([b.training_example("acid", [0]),
                                                    b.training_example("gear shaft spring lever", [2])])
    expected = model(**batch).loss
    expected.backward()
    grad = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    model.zero_grad()
    loss = AnswerLoss(model, prefix_len=len(b.prefix_ids) if share_prefix else 0)(**batch)["loss"]
    torch.testing.assert_close(loss, expected)
    loss.backward()  # gradients from every row meet in the shared prefix's cache
    torch.testing.assert_close(model.model.layers[0].self_attn.q_proj.weight.grad, grad, atol=1e-6, rtol=1e-4)


def test_long_texts_are_cut_inside_the_prompt_and_the_answer_survives(tokenizer):
    b = builder(tokenizer, multi_label=True, max_length=48)
    b.set_answer_reserve([[0, 1, 2]])
    long_text = " ".join(["acid"] * 200)
    ex = b.training_example(long_text, [0, 1, 2])
    assert len(ex["input_ids"]) <= 48
    answer = b.answer_ids([0, 1, 2])
    assert ex["input_ids"][-len(answer):] == answer
    prompt = ex["input_ids"][:-len(answer)]
    assert prompt[-len(b.suffix_ids):] == b.suffix_ids  # the instruction after the text is kept
    assert prompt[:len(b.prefix_ids)] == b.prefix_ids
    with pytest.raises(ValueError, match="max_length=20 leaves no room"):
        builder(tokenizer, max_length=20).prompt_ids(["acid"])


def test_labels_that_tokenize_alike_are_refused(tokenizer):
    with pytest.raises(ValueError, match="tokenize to the same ids"):
        builder(tokenizer, labels=["qqqq", "zzzz"])  # both unknown words


def test_bad_prompt_templates_are_refused():
    with pytest.raises(ConfigError, match="exactly once"):
        InstructionConfig(prompt_template="{task_description} {labels}")
    with pytest.raises(ConfigError, match="unknown slot"):
        InstructionConfig(prompt_template="{text} {label}")


# ---- parsing


@pytest.mark.parametrize("output, expected", [
    ("chemistry", 0), ("  mechanics\n", 2),                       # exact
    ("Electricity", 1), ("MECHANICS", 2),                          # case
    ("The answer is: chemistry.", 0), ("Mechanics!", 2),           # contained
    ("", None), ("I cannot tell", None), ("chem", None),           # garbage
])
def test_parse_label(output, expected):
    assert parse_label(output, LABELS) == expected


def test_parse_prefers_the_longest_contained_label_and_refuses_several():
    assert parse_label("technology news", ["tech", "technology"]) == 1
    assert parse_label("it is about tech", ["tech", "technology"]) == 0
    assert parse_label("Categories: chemistry, electricity", LABELS) is None  # an echo of the prompt


def test_parse_multi_label_answers():
    assert parse_answer("mechanics; chemistry", LABELS, True) == [0, 2]
    assert parse_answer("Chemistry ;electricity;", LABELS, True) == [0, 1]
    assert parse_answer("chemistry; nonsense", LABELS, True) is None  # one bad part: invalid
    assert parse_answer(" ; ", LABELS, True) is None
    assert parse_answer("electricity", LABELS, False) == [1]


# ---- invalid outputs


def test_invalid_rows_are_scored_wrong_even_when_label_0_is_true():
    y = np.array([0, 1, 2, 0])
    proba = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32)  # row 0: invalid (zeros)
    invalid = np.array([True, False, False, False])
    m = classification_metrics(y, proba, LABELS, False, invalid=invalid)
    assert m["accuracy"] == pytest.approx(0.75) and m["f1_micro"] == pytest.approx(0.75)
    # a miss of chemistry (recall 1/2), no false positive anywhere: F1 2/3; the others are perfect
    assert m["f1_per_label"] == pytest.approx({"chemistry": 2 / 3, "electricity": 1.0, "mechanics": 1.0})
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2) / 3)
    assert set(m["support_per_label"]) == set(LABELS)
    assert classification_metrics(y, proba, LABELS, False)["accuracy"] == 1.0  # what argmax alone would say


def test_invalid_multi_label_rows_predict_nothing():
    y = np.array([[1, 0, 0], [0, 1, 1]])
    proba = np.array([[0, 0, 0], [0, 1, 1]], dtype=np.float32)
    m = classification_metrics(y, proba, LABELS, True, invalid=np.array([True, False]))
    assert m["precision_at_1"] == 0.5 and m["subset_accuracy"] == 0.5
    # an invalid row predicts nothing even where its (zero) scores would pass a low threshold
    low = classification_metrics(y, proba, LABELS, True, threshold=0.0, invalid=np.array([True, False]))
    assert low["f1_per_label"]["chemistry"] == 0.0 and low["subset_accuracy"] == 0.0


def test_generated_garbage_is_counted_and_scored_wrong(tiny_task_factory, label_llama, monkeypatch):
    task = tiny_task_factory(multi_label=False)
    clf = make_clf(label_llama, zero_shot=True, predict_mode="generate").fit(task)
    answers = ["Chemistry", "no idea", "the topic is mechanics"] * len(task.test)

    def fake_generate(texts, constrained=False, phase="predict"):
        return [[1, 2]] * len(texts), answers[:len(texts)]

    monkeypatch.setattr(clf, "generate", fake_generate)
    proba = clf.predict_proba(task.test.texts)
    expected_invalid = np.array([a == "no idea" for a in answers[:len(task.test)]])
    np.testing.assert_array_equal(clf.invalid_mask, expected_invalid)
    assert clf.prediction_stats["invalid_output_rate"] == pytest.approx(expected_invalid.mean())
    assert (proba[expected_invalid] == 0).all() and (proba[~expected_invalid].sum(1) == 1).all()
    monkeypatch.setattr(clf, "fit", lambda task: clf)  # measure the prediction only
    result = fit_and_evaluate(clf, task)
    predicted_right = (proba.argmax(1) == task.test.y) & ~expected_invalid
    assert result.metrics["accuracy"] == pytest.approx(predicted_right.mean())
    assert result.extra["invalid_output_rate"] == pytest.approx(expected_invalid.mean())


# ---- constrained decoding


def random_walk(constraint, rng, limit=50):
    tokens = []
    for _ in range(limit):
        t = int(rng.choice(constraint.allowed(tokens)))
        tokens.append(t)
        if t == constraint.eos_id:
            return tokens
    raise AssertionError(f"no EOS after {limit} tokens: {tokens}")


def test_prefix_tree_allows_only_valid_answers_even_with_shared_prefixes():
    eos = 99
    first = [[5], [5, 6], [7, 8]]          # label 0 is a prefix of label 1 ("tech", "technology")
    nxt = [[9, 5], [9, 5, 6], [9, 7, 8]]   # separator + label
    single, multi = AnswerConstraint(first, None, eos), AnswerConstraint(first, nxt, eos)
    assert single.allowed([]) == [5, 7] and single.allowed([5]) == [6, eos] and single.allowed([5, 6]) == [eos]
    assert multi.allowed([5]) == [6, 9, eos]
    assert multi.allowed([5, 6, 9]) == [7]  # after label 1 only label 2 may follow
    assert multi.labels_of([5, 9, 5, 6, eos]) == [0, 1] and multi.labels_of([7, 8, eos]) == [2]
    assert multi.labels_of([5, 9]) is None  # incomplete
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        labels = multi.labels_of(random_walk(multi, rng))
        assert labels and labels == sorted(set(labels))
        seen.add(tuple(labels))
    assert len(seen) == 7  # every non-empty subset of three labels is reachable


@pytest.mark.parametrize("multi_label", [False, True])
def test_constrained_decoding_of_an_untrained_model_gives_valid_labels(tiny_task_factory, label_llama,
                                                                       multi_label):
    task = tiny_task_factory(multi_label=multi_label)
    clf = make_clf(label_llama, zero_shot=True, predict_mode="constrained", multi_label=multi_label).fit(task)
    proba = clf.predict_proba(task.test.texts)
    assert set(np.unique(proba)) <= {0.0, 1.0}
    if multi_label:
        assert (proba.sum(1) >= 1).all()
    else:
        assert (proba.sum(1) == 1).all()
    assert clf.prediction_stats["invalid_output_rate"] == 0.0
    assert clf.prediction_stats["generated_tokens_per_example"] >= 2  # a label and EOS
    b = clf.prompts
    for text, row in zip(clf.last_outputs, proba):
        assert b.answer_separator.join(b.labels[j] for j in np.flatnonzero(row)) == text.replace(" ;", ";")


def test_free_generation_of_an_untrained_model_is_mostly_invalid(tiny_task_factory, label_llama):
    task = tiny_task_factory(multi_label=False)
    clf = make_clf(label_llama, zero_shot=True, predict_mode="generate", max_new_tokens=4).fit(task)
    proba = clf.predict_proba(task.test.texts)
    stats = clf.prediction_stats
    assert stats["predict_mode"] == "generate" and 0 < stats["generated_tokens_per_example"] <= 4
    assert stats["invalid_output_rate"] == pytest.approx(clf.invalid_mask.mean())
    assert ((proba.sum(1) == 1) | clf.invalid_mask).all()


# ---- scoring


def test_reused_kv_cache_scores_equal_separate_full_forward_passes(label_llama, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(label_llama).eval()
    b = builder(tokenizer, multi_label=True)
    prompts = b.prompt_ids(["acid", "gear shaft spring lever valve piston the device", "wire signal"])
    conts, _ = multi_label_continuations(b)  # different lengths: right padding inside the continuations
    assert len({len(c) for c in conts}) > 1 and len({len(p) for p in prompts}) > 1  # and left padding
    slow = score_continuations_full(model, prompts, conts, tokenizer.pad_token_id)
    for prefix_len in (0, len(b.prefix_ids)):  # the prompts' shared prefix run once, or with every prompt
        fast = score_continuations(model, prompts, conts, tokenizer.pad_token_id, prefix_len, max_rows=7)
        np.testing.assert_allclose(fast, slow, atol=1e-4, rtol=1e-4)  # max_rows=7: several chunks
        assert (fast < 0).sum() == sum(len(c) for c in conts) * len(prompts)  # 0 exactly past each end


@pytest.mark.parametrize("constrained", [False, True])
def test_generation_with_the_shared_prefix_equals_plain_generation(tiny_task_factory, label_llama, constrained):
    task = tiny_task_factory(multi_label=True)
    clf = make_clf(label_llama, zero_shot=True, max_new_tokens=6).fit(task)
    assert clf.share_prefix and clf.prefix_len > 0
    shared = clf.generate(task.test.texts, constrained=constrained)
    clf.share_prefix = False
    assert clf.generate(task.test.texts, constrained=constrained) == shared


def test_label_marginals_equal_the_sum_over_every_valid_answer():
    rng = np.random.default_rng(1)

    class B:  # first pieces of lengths 1, 2, 1 and next pieces of length 2
        labels, first_pieces = LABELS, [[1], [2, 3], [4]]

    conts_keys = [(i, k) for i in range(3) for k in [*range(i + 1, 3), None]]
    logp = np.log(rng.uniform(0.05, 1, size=(2, len(conts_keys), 4)))
    q_first = {i: np.exp(logp[:, c, :len(B.first_pieces[i])].sum(-1)) for c, (i, _) in enumerate(conts_keys)}
    z0 = sum(q_first.values())
    trans = {(i, k): np.exp(logp[:, c, len(B.first_pieces[i]):].sum(-1)) for c, (i, k) in enumerate(conts_keys)}
    expected = np.zeros((2, 3))
    for r in range(1, 4):
        for path in itertools.combinations(range(3), r):
            p = q_first[path[0]] / z0
            for a, nxt in zip(path, [*path[1:], None]):
                p = p * trans[(a, nxt)] / sum(v for (i, _), v in trans.items() if i == a)
            expected[:, list(path)] += p[:, None]
    np.testing.assert_allclose(label_marginals(logp, B, conts_keys), expected, rtol=1e-6)


def test_score_mode_probabilities_sum_to_one(tiny_task_factory, label_llama):
    task = tiny_task_factory(multi_label=False)
    clf = make_clf(label_llama, predict_mode="score").fit(task)
    proba = clf.predict_proba(task.test.texts)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert clf.prediction_stats == {**clf.prediction_stats, "invalid_output_rate": 0.0,
                                    "generated_tokens_per_example": 0.0, "predict_mode": "score"}
    losses = [h["loss"] for h in clf.log_history if "loss" in h]
    assert losses and all(np.isfinite(losses))
    assert 0 < clf.trainable_params < clf.total_params


def test_multi_label_scores_are_label_probabilities_with_a_tuned_threshold(tiny_task_factory, label_llama):
    task = tiny_task_factory(multi_label=True)
    clf = make_clf(label_llama, predict_mode="score", multi_label=True, zero_shot=True).fit(task)
    proba = clf.predict_proba(task.test.texts)
    assert ((proba > 0) & (proba < 1)).all()
    assert (proba.sum(1) >= 1 - 1e-5).all()  # every answer holds at least one label
    assert 0.05 <= clf.threshold <= 0.95


# ---- zero-shot and the adapter cache


def test_zero_shot_trains_nothing(tiny_task_factory, label_llama):
    clf = make_clf(label_llama, zero_shot=True).fit(tiny_task_factory())
    assert clf.trainable_params == 0 and clf.total_params > 0 and clf.log_history == []


def test_a_trained_adapter_is_reused_only_for_the_same_training(tiny_task_factory, label_llama, tmp_path):
    task = tiny_task_factory(multi_label=False)
    first = make_clf(label_llama, predict_mode="score")
    first.adapter_cache = str(tmp_path)
    first.fit(task)
    assert not first.adapter_reused and (tmp_path / first.adapter_key / "adapter_model.safetensors").exists()

    again = make_clf(label_llama, predict_mode="generate", max_new_tokens=3, eval_batch_size=4)
    again.adapter_cache = str(tmp_path)
    result = fit_and_evaluate(again, task)
    assert again.adapter_reused and again.adapter_key == first.adapter_key
    assert again.log_history == first.log_history
    assert result.costs["timings"]["train_seconds"] == pytest.approx(first.adapter_train_seconds)
    assert "adapter_load_seconds" in result.costs["timings"] and result.extra["adapter_reused"] is True
    trained = {k: v for k, v in first.model.state_dict().items() if "lora" in k}
    loaded = again.model.state_dict()
    assert trained and all(torch.equal(v, loaded[k]) for k, v in trained.items())
    again.cfg = InstructionConfig(**{**again.cfg.to_dict(), "predict_mode": "score"})
    np.testing.assert_allclose(again.predict_proba(task.test.texts), first.predict_proba(task.test.texts),
                               atol=1e-6)

    changed = make_clf(label_llama, predict_mode="score", learning_rate=2e-3)
    changed.adapter_cache = str(tmp_path)
    changed.fit(task)
    assert not changed.adapter_reused and changed.adapter_key != first.adapter_key


def test_quantized_base_trains_and_scores(tiny_task_factory, label_llama):
    pytest.importorskip("bitsandbytes")
    task = tiny_task_factory(multi_label=False)
    clf = make_clf(label_llama, quantization="4bit", lora_target_modules=["q_proj", "v_proj"]).fit(task)
    proba = clf.predict_proba(task.test.texts)
    assert np.isfinite(proba).all() and 0 < clf.trainable_params
