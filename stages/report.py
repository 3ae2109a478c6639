"""DVC stage `report`: claims vs our numbers -> reports/index.html, results.md, results.json."""
from arkbench.report.build import build_report
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("report", build_report, metrics_path="metrics/report.json")
