"""`make screenshot`: retake docs/screenshot.png and docs/screenshot-3d.png, the web page with a real photograph
(scikit-image's sample ``coffee``), in headless Chromium. The code and its description: localdev/screenshot.py.

    python scripts/screenshot.py [--model-dir layer/model] [--out docs]
"""

import sys

from localdev.screenshot import main

if __name__ == "__main__":
    sys.exit(main())
