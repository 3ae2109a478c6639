"""Split report/claims.yaml's `papers:` block into src/arkbench/papers/<paper>/claims.yaml (comments kept)."""
import sys
from pathlib import Path
root = Path(sys.argv[1])
src = (root / 'src/arkbench/report/claims.yaml').read_text().splitlines(keepends=True)
pi = next(i for i, l in enumerate(src) if l.startswith('papers:'))
starts = [(l.strip()[:-1], i) for i, l in enumerate(src) if i > pi and l.startswith('  ') and not l.startswith('   ')
          and l.rstrip().endswith(':') and not l.lstrip().startswith('#')]
end_papers = next(i for i, l in enumerate(src) if i > pi and l.strip() and not l.startswith(' ') and not l.startswith('#'))
# comments before the next top-level key belong to it
core_i = end_papers
while core_i > pi and (src[core_i - 1].startswith('#') or not src[core_i - 1].strip()):
    core_i -= 1
starts = [(n, i) for n, i in starts if i < core_i]
header = '''# Claims of the paper {name!r}: each headline claim beside where our number comes from.
# Row fields and criteria: see src/arkbench/report/claims.yaml (the registry header) and
# src/arkbench/report/criteria.py. The report collects this file through the paper's
# manifest (arkbench.papers); "ours.file" is a metrics file this paper's stages write.
# paper.value is set ONLY where the spec gives the number; never invent numbers here.
'''
for k, (name, i) in enumerate(starts):
    j = starts[k + 1][1] if k + 1 < len(starts) else core_i
    block = src[i + 1:j]
    while block and not block[-1].strip():
        block.pop()
    out = [('\n' if not l.strip() else (l[4:] if l.startswith('    ') else l.lstrip())) for l in block]
    d = root / f'src/arkbench/papers/{name}'
    d.mkdir(exist_ok=True)
    (d / 'claims.yaml').write_text(header.format(name=name) + '\n' + ''.join(out))
    print(name, sum(1 for l in out if l.startswith('  - id:')))
head = ''.join(src[:pi]).replace("# Claims registry: each paper's headline claims beside where our number comes from.",
    "# Claims registry. Each paper's claims live with the paper (src/arkbench/papers/<paper>/claims.yaml,\n"
    "# found through its manifest); this file holds the row format below and the Transformer core.")
head = head.replace('''# Paper-module owners: if your metrics keys differ, edit the `ours`/criterion keys of
# your paper's rows (tests check that every row still validates).
''', '''# A paper's claims.yaml has top-level `title`, `spec` and `claims` (a list of rows); edit
# the `ours`/criterion keys of your rows if your metrics keys differ (tests validate them).
''')
(root / 'src/arkbench/report/claims.yaml').write_text(head + ''.join(src[core_i:]))
