# Sourced (from the repository root) by the RL tuning scripts in benchmarks/results/rl_*/run.sh:
# the one dataset every tuning run shares (the generator has its own seed, so every bench seed
# makes the same one), and the state-view tuning's reward models to reuse.
DATA=${DATA:-runs/rl-state-features/seed0/dataset}
[ -f "$DATA/manifest.json" ] || pluralign rl data --out "$DATA"

# reuse_view_models K SEED OUT: copy the pcell / 4,000-step reward models that
# benchmarks/results/rl_state_view/run.sh trained for K goals and tuning seed SEED (0 or 20) into
# the bench folder OUT, when found and not there yet, so that only relabelling and IQL run.
reuse_view_models() {
  src=runs/rl-view/pcell-r4000; [ "$2" = 20 ] && src=runs/rl-view/s20-pcell-r4000
  if [ -d "$src/k$1-seed$2-pcell" ] && [ ! -d "$3/k$1-seed$2-pcell" ]; then
    mkdir -p "$3" && cp -r "$src/k$1-seed$2-pcell" "$3/"
  fi
}
