"""What every stage needs: errors, typed configs, the device, the version and the data-root paths."""
