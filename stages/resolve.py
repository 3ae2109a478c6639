"""DVC stage `resolve` (~0.2 s, reruns when params.yaml changes): each params section merged with the
active profile's overrides, and a link to the external data folder that profile reads (arkbench.resolve)."""
from arkbench.resolve import run

if __name__ == "__main__":
    doc = run()
    print(f"[resolve] {len(doc['sections'])} params sections; local data: {doc['local'] or 'none'}")
