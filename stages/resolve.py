"""DVC stage `resolve` (~0.3 s, reruns when params.yaml, dvc.yaml, a stage script, src/arkbench or
.dvcignore changes): one key file per stage (its params sections merged with the active profile, the
seed, its script and its code family, hashed), the active profile's name, and a link to the external
data folder that profile reads (arkbench.resolve)."""
from arkbench.resolve import run

if __name__ == "__main__":
    doc = run()
    print(f"[resolve] {len(doc['stages'])} stage keys over {len(doc['sections'])} params sections; "
          f"local data: {doc['local'] or 'none'}")
