"""Move `profiles.<profile>.<section>` overrides beside their sections (section.profiles.<profile>)."""
import re, sys
from pathlib import Path
path = Path(sys.argv[1])
lines = path.read_text().splitlines(keepends=True)
pi = next(i for i, l in enumerate(lines) if l.startswith('profiles:'))
prof_block, head = lines[pi:], lines[:pi]
overrides = {}
cur_prof = cur_sec = None
for l in prof_block[1:]:
    if re.match(r'^  [A-Za-z_]+:', l):
        cur_prof = l.strip().split(':')[0]; cur_sec = None; continue
    m = re.match(r'^    ([A-Za-z_]+):(.*)$', l.rstrip('\n'))
    if m and cur_prof:
        cur_sec, rest = m.group(1), m.group(2)
        if rest.split('#')[0].strip() == '{}':
            cur_sec = None; continue
        overrides.setdefault(cur_sec, []).append([cur_prof, rest, []]); continue
    if cur_sec and (l.startswith('      ') or not l.strip()):
        overrides[cur_sec][-1][2].append(l); continue
    if l.strip().startswith('#') or not l.strip():
        continue
    raise SystemExit(f'unparsed: {l!r}')
sec_starts = {m.group(1): i for i, l in enumerate(head) if (m := re.match(r'^([A-Za-z_]+):', l))}
order = sorted(sec_starts.items(), key=lambda kv: kv[1])
ends = {}
for k, (name, idx) in enumerate(order):
    end = order[k + 1][1] if k + 1 < len(order) else len(head)
    while end > idx and not head[end - 1].strip():
        end -= 1
    ends[name] = end
insert_at = {ends[s]: s for s in overrides}
new = []
for idx, l in enumerate(head + ['']):
    if idx in insert_at:
        s = insert_at[idx]
        new.append('  profiles:                  # what the other profiles change (merged over the values above)\n')
        for prof, rest, body in overrides[s]:
            while body and not body[-1].strip():
                body.pop()
            new.append(f'    {prof}:{rest}\n')
            new.extend(body)
    if idx < len(head):
        new.append(l)
text = ''.join(new).rstrip('\n') + '\n'
text = text.replace('''# arkbench params: one section per DVC stage (dvc.yaml lists each as a params dep).
# Values here are the `smoke` profile: every stage of every paper on 2 CPU cores in
# minutes. `profiles.small` / `profiles.paper` override them; switch with
#   dvc exp run -S profile=small        (or edit `profile:` and run `dvc repro`)
# Every section is validated when its stage starts (src/arkbench/config.py).

profile: smoke   # smoke | small | paper
seed: 0          # global seed: same params + seed => same metrics on CPU
''', '''# arkbench params: one section per DVC stage (dvc.yaml lists each as a params dep).
# A section's values are the `smoke` profile: every stage of every paper on 2 CPU cores
# in minutes. Its `profiles:` key, beside them, holds what the other profiles change
# (only profiles that change something are listed); switch with
#   dvc exp run -S profile=small        (or `arkbench profile small` and `dvc repro`)
# Every section is validated when its stage starts (src/arkbench/config.py);
# `arkbench params check` validates every section under every profile.

profile: smoke                  # the active profile, one of `profiles`
profiles: [smoke, small, paper] # smoke: CPU minutes; small: one GPU, hours; paper: the papers' settings
seed: 0                         # global seed: same params + seed => same metrics on CPU
''')
assert 'profiles: [smoke' in text
path.write_text(text)
print(sorted(overrides))
