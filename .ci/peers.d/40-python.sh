# Python packages the tests drive: the official `openai` SDK (against
# `ratesim serve`) and `limits` (the python-limits dialect's reference).
source "$(dirname "$0")/../peer-lib.sh"
pip_install openai==3.57.0 limits==5.8.0
python3 -c "import openai, limits; print('openai', openai.__version__, '· limits', limits.__version__)"
