from ragtune.advisor import advise
from ragtune.advisor.cite import best_quote

RULE_PASSAGE = (
    "When to use RAG. Prefer RAG when answers need high factual accuracy and access to current or extensive "
    "information. The content changes often, so retraining is impractical and re-indexing is cheap."
)
API_PASSAGE = (
    "Prefer a hosted API model when you must deploy quickly without compute overhead. "
    "It suits fast prototyping with limited resources."
)
OFF_TOPIC = "Tokenisers split text into subword units. Byte-pair encoding merges frequent pairs."


def test_best_quote_picks_the_sentence_sharing_most_words_with_the_query(fake_searcher):
    hits = [fake_searcher.hit(OFF_TOPIC), fake_searcher.hit(RULE_PASSAGE)]
    hit, quote = best_quote("content changes often retraining impractical", hits)
    assert hit is hits[1]
    assert quote.startswith("The content changes often, so retraining is impractical")


def test_best_quote_returns_none_when_nothing_is_relevant(fake_searcher):
    assert best_quote("content changes often retraining impractical", [fake_searcher.hit(OFF_TOPIC)]) is None


def test_best_quote_drops_the_heading_a_chunk_opens_with(fake_searcher):
    hit = fake_searcher.hit("When to fine-tune Prefer fine-tuning when the model must be customised for a "
                            "specialised task.", section="When to fine-tune")
    _, quote = best_quote("fine-tuning customised specialised task", [hit])
    assert quote.startswith("Prefer fine-tuning when")


def test_recommendation_quotes_the_corpus_with_numbered_citations(fake_searcher):
    searcher = fake_searcher([
        fake_searcher.hit(RULE_PASSAGE, source="corpora/api_rag_or_finetuning.md", section="When to use RAG",
                          chunk_id="c1"),
        fake_searcher.hit(API_PASSAGE, source="corpora/api_rag_or_finetuning.md", section="When to use an API",
                          page=2, chunk_id="c2"),
    ])
    rec = advise({"knowledge_change": "daily", "citations": "yes"}, searcher=searcher)
    assert searcher.queries, "the corpus was never searched"
    assert rec.quotes and [q.marker for q in rec.quotes] == list(range(1, len(rec.quotes) + 1))
    rag = rec.option("rag")
    assert rag.citations, "RAG's rule should be backed by the RAG passage"
    quoted = rec.quotes[rag.citations[0] - 1]
    assert quoted.chunk_id == "c1" and "factual accuracy" in quoted.text
    api = rec.option("api")
    assert any("deploy quickly" in rec.quotes[m - 1].text for m in api.citations)
    md = rec.to_markdown()
    assert f"[{quoted.marker}] corpora/api_rag_or_finetuning.md, section “When to use RAG”" in md
    assert "page 2" in md


def test_a_failing_searcher_leaves_the_advice_intact_and_says_why():
    class Broken:
        def search(self, query, k=5):
            raise RuntimeError("index is locked")

    rec = advise({"knowledge_change": "daily", "citations": "yes"}, searcher=Broken())
    assert rec.winner == "rag"
    assert rec.quotes == []
    assert "Citations unavailable" in rec.citations_note and "index is locked" in rec.citations_note
    assert "index is locked" in rec.to_markdown()


def test_without_a_searcher_the_report_says_citations_were_not_requested():
    rec = advise({"citations": "yes"})
    assert rec.quotes == [] and "not requested" in rec.citations_note


# -- relevance: a retrieved passage is quoted only when it concerns what it backs ----------------------------
QLORA_STORAGE = ("QLoRA fine-tunes LoRA adapters on top of a base model whose frozen weights are stored in 4 bits. "
                 "Fine-tuning with QLoRA keeps the training memory small on one GPU.")
FT_LATENCY = ("A fine-tuned small model answers fast: short prompts replace long few-shot prompts, "
              "which cuts latency for every query.")


def test_mentions_matches_keywords_at_word_starts_only():
    from ragtune.advisor.cite import mentions

    assert mentions("Use RAG when content changes.", ("rag",))
    assert not mentions("Weights are kept in storage.", ("rag",))  # "rag" inside "storage"
    assert mentions("passages are retrieved at query time", ("retriev",))


def test_a_sentence_without_the_factor_is_not_quoted_for_it(fake_searcher):
    hits = [fake_searcher.hit(QLORA_STORAGE)]
    query = "Fine-tuning: Speed / latency. Short prompts and a small self-hosted model can answer quickly."
    require = [("latency", "speed", "fast", "slow"), ("fine-tun", "lora")]
    assert best_quote(query, hits) is not None  # retrieval alone would have quoted it
    assert best_quote(query, hits, require=require) is None
    hit, quote = best_quote(query, [fake_searcher.hit(QLORA_STORAGE), fake_searcher.hit(FT_LATENCY)],
                            require=require)
    assert "cuts latency" in quote


def test_an_off_topic_passage_is_dropped_from_the_report_and_counted(fake_searcher):
    searcher = fake_searcher([fake_searcher.hit(QLORA_STORAGE, source="corpora/lora_qlora.pdf", chunk_id="q")])
    rec = advise({"need": "behaviour", "latency_budget": "instant"}, searcher=searcher)
    ft = rec.option("finetune")
    latency = [r for r in ft.reasons_for if r.factor_id == "latency"]
    assert latency and latency[0].citations == []  # retrieved, but about storage, not speed
    assert any("Speed / latency" in d for d in rec.quotes_dropped)
    assert "do not concern what they would back" in rec.citations_note


def test_a_rule_is_quoted_only_from_the_document_it_is_credited_to(fake_searcher):
    floor = ("About 50 high-quality examples is a sensible floor before a clear improvement appears; a few hundred "
             "to a few thousand is typical for a focused task.")
    elsewhere = fake_searcher.hit(floor, source="corpora/choosing_a_model.md", chunk_id="wrong")
    rec = advise({"need": "behaviour"}, searcher=fake_searcher([elsewhere]))
    rule = next(r for r in rec.option("finetune").rules if r.id == "example_floor")
    assert rule.source == "Supervised fine-tuning and instruction tuning" and rule.citations == []
    right = fake_searcher.hit(floor, source="corpora/supervised_fine_tuning.docx", chunk_id="right")
    rec = advise({"need": "behaviour"}, searcher=fake_searcher([elsewhere, right]))
    rule = next(r for r in rec.option("finetune").rules if r.id == "example_floor")
    assert rule.citations and rec.quotes[rule.citations[0] - 1].chunk_id == "right"
