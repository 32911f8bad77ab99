"""Networks as graphs: scenario files, bearer profiles, generators and analysis."""
