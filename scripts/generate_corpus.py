#!/usr/bin/env python
"""Generate the shipped corpus of real LM responses (issue 4, item 4).

Prompts come from a small topic grammar (how-to, explanations, concepts, advice, comparisons,
pros and cons, recommendations, planning, idioms, writing tasks, ideas: 335 distinct prompts, the
first 320 of a seeded shuffle are used); each prompt gets four responses from the offline
SmolLM2-135M-Instruct (the fp32 copy from ``pluralign.features.offline.smollm2_dir``, computed
in bf16), each under an instruction that sets three style factors:

- length: ``short`` ("one or two sentences") or ``long`` ("in detail"),
- format: ``list`` (bulleted list) or ``prose`` (paragraphs),
- tone: ``formal`` or ``casual``.

The four responses of a prompt follow one half of the 2x2x2 design (an orthogonal array, so the
three factors are balanced and uncorrelated within the prompt; the halves alternate between
prompts); ``--responses-per-prompt`` above 4 adds draws from the other half. What the model
actually wrote is what the attribute scorers (``pluralign.data.builtin.scorers``) measure; the
instruction is recorded as metadata.

The output is gzip JSONL, one row per response, written in chunks of whole prompts, so an
interrupted run resumes (``--resume``) and a run cut short still holds complete prompts. Two
workers can share the job: one forward, one ``--reverse``, each skipping what the other has
written, then a ``--resume --merge`` joins them (docs/builtin-data.md has the exact commands).

    .venv/bin/python scripts/generate_corpus.py --threads 1    # one worker (4-5 s a response on the shared 2-core machine)
    .venv/bin/python scripts/generate_corpus.py --n-prompts 8 --out /tmp/c.jsonl.gz   # a quick look
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/pluralign/resources/smollm2_corpus.jsonl.gz"

# ---------------------------------------------------------------- the prompt grammar
HOWTO = [
    "keep basil alive indoors", "remove a red wine stain from a carpet", "make a good cup of pour-over coffee",
    "start running as a complete beginner", "change a flat bicycle tyre", "write a polite complaint email",
    "save money on groceries", "clean a cast iron pan", "learn to touch type", "prepare for a job interview",
    "organise a small closet", "fall asleep faster", "cook rice on the stove", "back up the photos on my phone",
    "negotiate a higher salary", "keep a sourdough starter healthy", "unclog a bathroom sink",
    "memorise a short speech", "make my houseplants grow faster", "train a puppy to sit",
    "reduce my screen time", "start a vegetable garden on a balcony", "fix a squeaky door",
    "choose a good password", "make friends in a new city", "study for a maths exam",
    "repot a cactus", "start journaling", "iron a dress shirt", "pack a suitcase efficiently",
    "bake bread without a bread machine", "stop procrastinating on homework", "wash a wool sweater",
    "set up a monthly budget", "keep cut flowers fresh longer", "teach a child to ride a bike",
    "improve my handwriting", "make a paper airplane that flies far", "sharpen a kitchen knife",
    "get rid of fruit flies", "learn a new language on my own", "brew iced tea at home",
    "take better photos with my phone", "stay focused while working from home", "defrost a freezer",
    "write a good cover letter", "paint a room without making a mess", "care for a goldfish",
    "make a simple tomato sauce", "keep my laptop battery healthy", "prepare a speech for a wedding",
    "plan meals for a week", "fold a fitted sheet", "start meditating", "hang a picture straight",
]
EXPLAIN = [
    "the sky is blue", "leaves change colour in autumn", "bread rises", "ice floats on water",
    "we have leap years", "the moon has phases", "cats purr", "onions make people cry",
    "airplanes stay in the air", "the ocean is salty", "we get hiccups", "metal feels colder than wood",
    "yawning is contagious", "popcorn pops", "rainbows form", "people need sleep", "bees make honey",
    "soap removes grease", "the seasons change", "batteries run down", "coffee keeps people awake",
    "thunder follows lightning", "rubber bands stretch", "birds migrate", "our ears pop on planes",
    "milk goes sour", "plants need sunlight", "the tides rise and fall", "glass is transparent",
    "we dream", "mirrors reverse left and right", "sugar dissolves faster in hot water",
    "stars twinkle", "wet sand is firmer than dry sand", "dogs wag their tails",
    "cold weather makes my fingers stiff", "fireworks have different colours", "the Dead Sea is so salty",
    "microwaves heat food", "deserts get cold at night",
]
CONCEPTS = [
    "compound interest", "photosynthesis", "inflation", "a black hole", "machine learning",
    "the water cycle", "a vaccine", "an index fund", "the greenhouse effect", "a credit score",
    "supply and demand", "a blockchain", "DNA", "a recession", "the immune system", "a haiku",
    "an API", "the placebo effect", "gravity", "a sonnet", "carbon footprint", "a mortgage",
    "cloud computing", "an ecosystem", "democracy", "the Pythagorean theorem", "a metaphor",
    "opportunity cost", "renewable energy", "a spreadsheet", "probability", "an allergy",
    "a budget deficit", "the stock market", "a food chain", "photosynthesis in algae", "an encryption key",
    "a time zone", "a fossil", "a volcano",
]
ADVICE = [
    "I keep forgetting to drink water during the day", "my neighbour plays loud music late at night",
    "I feel nervous before speaking in meetings", "I have too many subscriptions",
    "my roommate never does the dishes", "I want to switch careers at 35",
    "I can't decide whether to adopt a cat or a dog", "my friend always cancels plans at the last minute",
    "I spend too much money eating out", "I get distracted by my phone while studying",
    "I want to read more books this year", "my teenager doesn't talk to me much",
    "I have a long commute and feel bored", "I want to get fit but hate gyms",
    "I'm moving abroad next month", "I keep waking up tired", "my manager gives vague feedback",
    "I want to learn to cook but I'm a beginner", "I feel lonely after moving", "my desk is always cluttered",
    "I have a big exam in two weeks", "I'm hosting my first dinner party", "I want to start saving for retirement",
    "my garden gets too much shade", "I lost my motivation to practise guitar", "I'm buying my first car",
    "my old laptop is very slow", "I want to volunteer but don't know where", "I argue with my sister a lot",
    "I have trouble saying no to extra work", "I want to travel on a small budget",
    "my dog barks at every visitor", "I want to write a novel", "I'm starting a new job on Monday",
    "I feel overwhelmed by my email inbox", "I want to eat less sugar", "my kids fight over screen time",
    "I'm thinking about going back to university", "I want to run a marathon next year",
    "my houseplants keep dying",
]
COMPARE = [
    ("a loan", "a lease"), ("weather", "climate"), ("a virus", "a bacterium"), ("tea", "coffee"),
    ("renting", "buying a home"), ("a crocodile", "an alligator"), ("baking soda", "baking powder"),
    ("a laptop", "a tablet"), ("stocks", "bonds"), ("jogging", "swimming"), ("a debit card", "a credit card"),
    ("an ebook", "a paper book"), ("a hurricane", "a tornado"), ("butter", "margarine"),
    ("a cold", "the flu"), ("electric cars", "petrol cars"), ("a city break", "a beach holiday"),
    ("Python", "JavaScript"), ("a frog", "a toad"), ("yoga", "pilates"), ("a lake", "a pond"),
    ("a violin", "a viola"), ("a moth", "a butterfly"), ("speed", "velocity"), ("an herb", "a spice"),
    ("a freelancer", "an employee"), ("a sprint", "a marathon"), ("a town", "a city"),
    ("whole milk", "oat milk"), ("a comet", "an asteroid"), ("a podcast", "a radio show"),
    ("a novel", "a novella"), ("a mountain", "a hill"), ("cooking with gas", "cooking with induction"),
    ("a rabbit", "a hare"),
]
PROSCONS = [
    "working from home", "living in a big city", "owning a dog", "learning piano as an adult",
    "buying a used car", "solar panels on a house", "a gap year before university", "intermittent fasting",
    "having a roommate", "online shopping", "a standing desk", "public transport", "self-employment",
    "homeschooling", "smartwatches", "electric scooters", "a four-day work week", "living in the countryside",
    "buying in bulk", "social media", "cycling to work", "open-plan offices", "a vegetarian diet",
    "keeping a paper diary", "camping holidays",
]
RECOMMEND = [
    ("board games", "a family with young children"), ("books", "someone who loves mysteries"),
    ("hobbies", "a retired teacher"), ("houseplants", "a dark apartment"), ("snacks", "a long hike"),
    ("gifts", "a friend who loves cooking"), ("exercises", "someone who sits all day"),
    ("podcasts", "a curious teenager"), ("breakfasts", "a busy morning"), ("day trips", "a rainy weekend"),
    ("apps", "learning vocabulary"), ("pets", "a small flat"), ("games", "a long car ride"),
    ("vegetables", "a first garden"), ("recipes", "a cold winter evening"), ("activities", "a team-building day"),
    ("habits", "better mornings"), ("tools", "a first home toolbox"), ("desserts", "a summer party"),
    ("songs", "a road trip"),
]
PLAN = [
    "a birthday party for a six-year-old", "a weekend in Rome", "a picnic in the park", "a study schedule for finals",
    "a surprise anniversary dinner", "a week of healthy lunches", "a garage sale", "a camping trip for beginners",
    "a book club meeting", "a small wedding", "a move to a new flat", "a charity bake sale",
    "a morning routine", "a family reunion", "a beginner's weekly workout", "a road trip along the coast",
    "a board game night", "a garden makeover", "a first visit to a museum with kids", "a budget holiday by train",
]

IDIOMS = [
    "break the ice", "bite the bullet", "the ball is in your court", "once in a blue moon", "spill the beans",
    "under the weather", "hit the sack", "cost an arm and a leg", "let the cat out of the bag",
    "a piece of cake", "burn the midnight oil", "cut corners", "hit the nail on the head", "on thin ice",
    "pull someone's leg", "the elephant in the room", "sit on the fence", "back to square one",
    "throw in the towel", "jump on the bandwagon",
]
WRITE = [
    "a thank-you note to a neighbour who watered my plants", "a short message declining a party invitation",
    "a welcome message for a new team member", "an apology to a friend for missing their call",
    "a reminder to my flatmates about bin day", "a note asking my landlord to fix the heating",
    "a toast for my parents' anniversary", "a request to my boss for a day off",
    "a birthday message for a colleague", "a reply to a customer asking about a late delivery",
    "a short description of my bakery for its website", "an invitation to a neighbourhood clean-up",
    "a farewell note to a retiring teacher", "a message asking a friend to return a borrowed book",
    "a short review of a café I liked", "a congratulations message for a graduation",
    "an out-of-office reply", "a note to my child's teacher about an absence",
    "a cover note for a volunteer application", "a short bio for a conference badge",
]
IDEAS = [
    "a rainy afternoon with kids", "a cheap date night", "using up leftover rice", "a science fair project",
    "decorating a small bedroom", "a school fundraiser", "a short story about a lighthouse", "a garden path",
    "staying active in winter", "a team name for a pub quiz", "reusing glass jars", "a picnic menu",
    "a YouTube channel about cooking", "a present for a five-year-old", "a workplace wellness week",
    "a relaxing Sunday", "a community art project", "a themed costume party", "learning history in a fun way",
    "saving energy at home",
]


def build_prompts(n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct prompts with their category, from the grammar, in a seeded order."""
    rng = random.Random(seed)
    pool: list[tuple[str, str]] = []
    how = ["How do I {}?", "What's the best way to {}?", "Can you tell me how to {}?", "Any tips on how to {}?"]
    pool += [("how-to", rng.choice(how).format(t)) for t in HOWTO]
    why = ["Why {}?", "Can you explain why {}?", "What is the reason {}?"]
    pool += [("explanation", rng.choice(why).format(t)) for t in EXPLAIN]
    what = ["What is {}?", "Explain {} to me.", "How does {} work?", "Could you describe {}?"]
    pool += [("concept", rng.choice(what).format(t)) for t in CONCEPTS]
    adv = ["{}. What should I do?", "{}. Any advice?", "{}. How should I handle this?"]
    pool += [("advice", rng.choice(adv).format(t[0].upper() + t[1:])) for t in ADVICE]
    cmp_ = ["What is the difference between {} and {}?", "How does {} compare to {}?", "{} or {}: which is better?"]
    for a, b in COMPARE:
        t = rng.choice(cmp_)
        text = t.format(a, b)
        pool.append(("comparison", text[0].upper() + text[1:]))
    pc = ["What are the pros and cons of {}?", "Is {} a good idea?", "What are the advantages and disadvantages of {}?"]
    pool += [("pros-cons", rng.choice(pc).format(t)) for t in PROSCONS]
    rec = ["What are some good {} for {}?", "Can you suggest {} for {}?", "Recommend some {} for {}."]
    pool += [("recommendation", rng.choice(rec).format(a, b)) for a, b in RECOMMEND]
    pl = ["Help me plan {}.", "How should I organise {}?", "What do I need to plan {}?"]
    pool += [("planning", rng.choice(pl).format(t)) for t in PLAN]
    idi = ["What does '{}' mean?", "Where does the expression '{}' come from?", "How do I use '{}' in a sentence?"]
    pool += [("idiom", rng.choice(idi).format(t)) for t in IDIOMS]
    wr = ["Write {}.", "Help me write {}.", "Can you draft {}?"]
    pool += [("writing", rng.choice(wr).format(t)) for t in WRITE]
    ide = ["Give me some ideas for {}.", "What are some ideas for {}?", "I need ideas for {}."]
    pool += [("ideas", rng.choice(ide).format(t)) for t in IDEAS]
    seen, unique = set(), []
    for cat, text in pool:
        if text not in seen:
            seen.add(text)
            unique.append((cat, text))
    if n > len(unique):
        raise SystemExit(f"the grammar yields {len(unique)} prompts, asked for {n}")
    rng.shuffle(unique)
    return [{"prompt_id": f"p{i:04d}", "category": c, "prompt": t} for i, (c, t) in enumerate(unique[:n])]


# ---------------------------------------------------------------- the style instructions
LENGTH = {"short": ["Answer in one or two sentences.", "Keep your answer very short.", "Be brief: two sentences at most."],
          "long": ["Answer in detail and cover several points.", "Give a thorough, detailed answer.",
                   "Explain fully, with plenty of detail."]}
FORMAT = {"list": ["Format the answer as a bulleted list.", "Use a bulleted list.", "Write it as a list of points."],
          "prose": ["Write in plain paragraphs, without lists.", "Answer in flowing prose, no bullet points.",
                    "Use full sentences in paragraphs, not a list."]}
TONE = {"formal": ["Use a formal, professional tone.", "Write formally, as in an official report.",
                   "Keep the tone formal and polite."],
        "casual": ["Use a casual, chatty tone, like talking to a friend.", "Be relaxed and casual, feel free to use slang.",
                   "Keep it informal and friendly."]}
# The two halves of the 2x2x2 design (orthogonal arrays of strength 2).
HALF_A = [("short", "prose", "formal"), ("short", "list", "casual"), ("long", "prose", "casual"), ("long", "list", "formal")]
HALF_B = [("short", "prose", "casual"), ("short", "list", "formal"), ("long", "prose", "formal"), ("long", "list", "casual")]


def styles_for(index: int, n_responses: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """Per prompt: one half of the design (alternating), then draws from the other half."""
    first, second = (HALF_A, HALF_B) if index % 2 == 0 else (HALF_B, HALF_A)
    out = list(first[:n_responses])
    if n_responses > 4:
        out += rng.sample(second, min(n_responses - 4, 4))
    return out


def instruction_for(style: tuple[str, str, str], rng: random.Random) -> str:
    parts = [rng.choice(LENGTH[style[0]]), rng.choice(FORMAT[style[1]]), rng.choice(TONE[style[2]])]
    rng.shuffle(parts)
    return " ".join(parts)


def trim_truncated(text: str) -> str:
    """Cut a response that hit max_new_tokens back to its last complete sentence or line."""
    text = text.rstrip()
    cut = max(text.rfind(". "), text.rfind(".\n"), text.rfind("!"), text.rfind("?"), text.rfind("\n"))
    if text.endswith((".", "!", "?")):
        return text
    return text[: cut + 1].rstrip() if cut > len(text) // 3 else text


# ---------------------------------------------------------------- generation
def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--n-prompts", type=int, default=320)
    ap.add_argument("--responses-per-prompt", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--repetition-penalty", type=float, default=1.1,
                    help="discourages the 135M model's loops ('I'm here to help!' x 20)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--chunk-prompts", type=int, default=16, help="prompts written per chunk (resume unit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2", help="'smollm2' (offline default) or any HF id/path")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                    help="compute dtype for generation: the fp32 copy is cast on load; bf16 is ~3-4x "
                         "faster on CPUs with AVX512-BF16 and far below the Q4_1 source's own rounding")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--resume", action="store_true", help="keep rows already in --out and add the rest")
    ap.add_argument("--merge", type=Path, action="append", default=[],
                    help="(with --resume) also keep the rows of this file, e.g. another worker's output")
    ap.add_argument("--reverse", action="store_true",
                    help="work through the chunks last-first (a second worker beside a forward one)")
    ap.add_argument("--skip-done-in", type=Path, default=None,
                    help="before each chunk, skip responses already in this file (the other worker's "
                         "output); stop when nothing is left")
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    from pluralign.features.offline import SMOLLM2_ALIASES, SMOLLM2_MODEL_ID, load_causal_lm

    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = build_prompts(args.n_prompts, args.seed)
    rng = random.Random(args.seed + 1)
    jobs = []  # (prompt, response index, style, instruction)
    for i, p in enumerate(prompts):
        for j, style in enumerate(styles_for(i, args.responses_per_prompt, rng)):
            jobs.append((p, j, style, instruction_for(style, rng)))

    done: list[str] = []
    if args.resume:
        seen: set[str] = set()
        for src in [args.out, *args.merge]:
            for line in _read_lines(src):
                rid = json.loads(line)["response_id"]
                if rid not in seen:
                    seen.add(rid)
                    done.append(line)
    done_ids = {json.loads(line)["response_id"] for line in done}
    todo = [j for j in jobs if f"{j[0]['prompt_id']}-r{j[1]}" not in done_ids]
    print(f"{len(prompts)} prompts, {len(jobs)} responses, {len(todo)} to generate", flush=True)

    model, tok = load_causal_lm(args.model, dtype=getattr(torch, args.dtype))
    model.eval()
    tok.padding_side = "left"  # decoder-only batched generation pads on the left
    model_id = SMOLLM2_MODEL_ID if args.model.lower() in SMOLLM2_ALIASES else args.model
    settings = {"do_sample": args.temperature > 0, "temperature": args.temperature, "top_p": args.top_p,
                "max_new_tokens": args.max_new_tokens,
                "repetition_penalty": args.repetition_penalty, "dtype": args.dtype, "seed": args.seed, "batch_size": args.batch_size}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".partial.gz")
    start = time.time()
    rows_out = list(done)
    chunk = args.chunk_prompts * args.responses_per_prompt
    bar = tqdm(total=len(todo), desc="generating", unit="resp", file=sys.stdout, mininterval=5)
    starts = list(range(0, len(todo), chunk))
    for c0 in reversed(starts) if args.reverse else starts:
        part = todo[c0:c0 + chunk]
        if args.skip_done_in is not None:
            other = {json.loads(line)["response_id"] for line in _read_lines(args.skip_done_in)}
            part = [j for j in part if f"{j[0]['prompt_id']}-r{j[1]}" not in other]
            if not part:
                print(f"chunk at {c0} already done in {args.skip_done_in}; stopping", flush=True)
                break
        # Within a chunk, short-style jobs are batched together so their batches stop early.
        part = sorted(part, key=lambda j: (j[2][0], j[0]["prompt_id"], j[1]))
        new_rows = []
        for b0 in range(0, len(part), args.batch_size):
            batch = part[b0:b0 + args.batch_size]
            texts = [tok.apply_chat_template([{"role": "user", "content": f"{p['prompt']}\n\n{ins}"}],
                                             tokenize=False, add_generation_prompt=True)
                     for p, _, _, ins in batch]
            enc = tok(texts, return_tensors="pt", padding=True)
            torch.manual_seed(args.seed * 1_000_003 + c0 + b0)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=settings["do_sample"],
                                     temperature=args.temperature, top_p=args.top_p,
                                     repetition_penalty=args.repetition_penalty, pad_token_id=tok.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for (p, j, style, ins), ids in zip(batch, new):
                ids = ids[ids != tok.pad_token_id] if tok.pad_token_id == tok.eos_token_id else ids
                n_tokens = int(ids.numel())
                raw = tok.decode(ids, skip_special_tokens=True).strip()
                truncated = n_tokens >= args.max_new_tokens
                new_rows.append(json.dumps({
                    "prompt_id": p["prompt_id"], "response_id": f"{p['prompt_id']}-r{j}",
                    "category": p["category"], "prompt": p["prompt"],
                    "style": {"length": style[0], "format": style[1], "tone": style[2]},
                    "instruction": ins, "response": trim_truncated(raw) if truncated else raw,
                    "truncated": truncated, "new_tokens": n_tokens,
                    "model": model_id, "generation": settings,
                }, ensure_ascii=False) + "\n")
            bar.update(len(batch))
        rows_out.extend(sorted(new_rows, key=lambda r: json.loads(r)["response_id"]))
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
            f.writelines(rows_out)
        tmp.replace(args.out)  # each chunk lands atomically: a crash keeps whole prompts
    bar.close()
    rows_out.sort(key=lambda r: json.loads(r)["response_id"])
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
        f.writelines(rows_out)
    tmp.replace(args.out)
    print(f"wrote {len(rows_out)} responses to {args.out} in {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
