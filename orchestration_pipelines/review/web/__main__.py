from orchestration_pipelines.review.web.server import serve

serve()
