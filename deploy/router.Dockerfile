# The router image deploy/k8s/router.yaml runs: vLLM's router from PyPI, nothing else.
#   docker build -f deploy/router.Dockerfile -t llmlab/vllm-router:0.1.17 deploy
FROM python:3.12-slim
RUN pip install --no-cache-dir vllm-router==0.1.17
USER 65534
EXPOSE 30000 29000
ENTRYPOINT ["vllm-router"]
