"""The applications built on the library: experiments, generation, personalisation, reports, the demo."""
