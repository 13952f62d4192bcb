"""Native models vs timm for every registered timm variant: prints the max delta per variant.

    python scripts/check_timm_parity.py            # all 18 timm variants (about 5 minutes on 2 cores)
    python scripts/check_timm_parity.py swin_t swinv2_t

Exit 1 if any variant is outside max |delta| <= 1e-4 x max |logits| at batch 1 and 3.
"""

import sys
import time

from swin_deploy.models import VARIANTS, get_config
from swin_deploy.tolerances import TIMM_PARITY_REL
from swin_deploy.verify.timm_reference import timm_parity

names = sys.argv[1:] or [n for n, c in VARIANTS.items() if c.timm_name]
failed = 0
print(f"{'variant':20} {'timm name':36} {'max |delta|':>12} {'relative':>10} {'verdict':>8} {'s':>5}")
for name in names:
    cfg = get_config(name)
    t0 = time.perf_counter()
    r = timm_parity(cfg)
    ok = r.max_rel <= TIMM_PARITY_REL
    failed += not ok
    print(f"{cfg.name:20} {cfg.timm_name or '-':36} {r.max_abs:12.3e} {r.max_rel:10.2e} {'ok' if ok else 'FAIL':>8} "
          f"{time.perf_counter() - t0:5.1f}", flush=True)
print(f"{len(names) - failed} of {len(names)} variants within {TIMM_PARITY_REL:.0e} x max|logits|")
sys.exit(1 if failed else 0)
