"""DVC stage `resolve` (~0.3 s, reruns when params.yaml or src/arkbench changes): each params section
merged with the active profile's overrides, a link to the external data folder that profile reads,
and each stage family's code hashed into one key file (arkbench.resolve)."""
from arkbench.resolve import run, write_code_keys

if __name__ == "__main__":
    doc = run()
    families = write_code_keys()
    print(f"[resolve] {len(doc['sections'])} params sections; local data: {doc['local'] or 'none'}; "
          f"code keys: {len(families)}")
