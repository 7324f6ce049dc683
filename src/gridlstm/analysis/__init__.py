"""Reading results: tables and curves from a sweep, summaries over seeds, speed benchmarks."""
