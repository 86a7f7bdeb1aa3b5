"""The studio page at /studio: a server-rendered shell in the editor's language (zh or en); plain JS in
static/studio.js calls /api/studio and /api/kb with the session's CSRF token or the admin token given at login."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.auth import CONTENT_ROLES, session_of
from gateway.static import serve_files

HERE = Path(__file__).resolve().parent
STATIC = {"studio.js": "text/javascript", "studio.css": "text/css"}
_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "内容工作室",
        "login": "登录",
        "email": "邮箱",
        "password": "密码",
        "or_token": "或使用管理令牌",
        "token": "管理令牌",
        "logout": "退出",
        "review": "待审消息",
        "intents": "意图与例句",
        "responses": "回复",
        "kb": "知识库",
        "train": "训练与上线",
        "refresh": "刷新",
        "add_example": "加为例句",
        "new_article": "新建知识条目",
        "dismiss": "忽略",
        "waiting": "条待审",
        "times": "次",
        "intent": "意图",
        "add": "添加",
        "save": "保存",
        "delete": "删除",
        "move": "移到",
        "new_intent": "新意图名",
        "new_response": "新回复名 (utter_…)",
        "search": "搜索",
        "new": "新建",
        "publish": "发布",
        "unpublish": "下线",
        "versions": "版本",
        "restore": "恢复",
        "validate": "校验训练数据",
        "start_training": "开始训练",
        "activate": "上线此模型",
        "rollback": "回滚到上一个模型",
        "live_model": "线上模型",
        "accuracy": "意图准确率",
        "live": "线上",
        "new_model": "新模型",
        "worse": "变差的例句",
        "better": "变好的例句",
        "confusions": "混淆",
        "per_intent": "各意图 F1",
        "chinese": "中文",
        "english": "英文",
        "department": "部门",
        "questions": "常见问法（每行一条）",
        "tags": "标签（逗号分隔）",
        "body": "正文",
        "article_title": "标题",
        "id": "编号",
        "published": "已发布",
        "recommended": "建议上线",
        "not_recommended": "不建议上线：新模型在这些例句上变差",
        "examples": "例句",
        "reasons": "原因",
    },
    "en": {
        "title": "Content studio",
        "login": "Log in",
        "email": "E-mail",
        "password": "Password",
        "or_token": "or use the admin token",
        "token": "Admin token",
        "logout": "Log out",
        "review": "Review queue",
        "intents": "Intents & examples",
        "responses": "Responses",
        "kb": "Knowledge base",
        "train": "Train & go live",
        "refresh": "Refresh",
        "add_example": "Add as example",
        "new_article": "New KB article",
        "dismiss": "Dismiss",
        "waiting": "waiting",
        "times": "×",
        "intent": "Intent",
        "add": "Add",
        "save": "Save",
        "delete": "Delete",
        "move": "Move to",
        "new_intent": "new intent name",
        "new_response": "new response name (utter_…)",
        "search": "Search",
        "new": "New",
        "publish": "Publish",
        "unpublish": "Unpublish",
        "versions": "Versions",
        "restore": "Restore",
        "validate": "Validate training data",
        "start_training": "Train a model",
        "activate": "Put this model live",
        "rollback": "Roll back to the previous model",
        "live_model": "Live model",
        "accuracy": "Intent accuracy",
        "live": "Live",
        "new_model": "New",
        "worse": "Examples that got worse",
        "better": "Examples that got better",
        "confusions": "Confusions",
        "per_intent": "F1 per intent",
        "chinese": "Chinese",
        "english": "English",
        "department": "Department",
        "questions": "Questions citizens ask (one per line)",
        "tags": "Tags (comma-separated)",
        "body": "Body",
        "article_title": "Title",
        "id": "Id",
        "published": "Published",
        "recommended": "Recommended to go live",
        "not_recommended": "Not recommended: the new model got these examples wrong",
        "examples": "examples",
        "reasons": "reasons",
    },
}


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/studio")
    async def studio_page(request: Request, lang: str | None = None) -> HTMLResponse:
        info = await session_of(request)
        csrf = info.csrf_token if info is not None and info.agent.role in CONTENT_ROLES else ""
        language = lang if lang in TEXTS else (info.agent.language if info is not None else "zh")
        if language not in TEXTS:
            language = "zh"
        html = _templates.get_template("studio.html").render(
            t=TEXTS[language], language=language, csrf_token=csrf, texts=TEXTS[language],
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    serve_files(router, "/studio/static/{name}", HERE / "static", STATIC)

    return router


router = build_router()
