from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField("メールアドレス", validators=[DataRequired(message="メールアドレスを入力してください。")])
    password = PasswordField("パスワード", validators=[DataRequired(message="パスワードを入力してください。")])
    submit = SubmitField("ログイン")


class PasswordChangeForm(FlaskForm):
    current = PasswordField("現在のパスワード", validators=[DataRequired(message="現在のパスワードを入力してください。")])
    new = PasswordField(
        "新しいパスワード",
        validators=[
            DataRequired(message="新しいパスワードを入力してください。"),
            Length(min=8, message="パスワードは8文字以上にしてください。"),
        ],
    )
    confirm = PasswordField(
        "新しいパスワード(確認)", validators=[EqualTo("new", message="確認用のパスワードが一致しません。")]
    )
    submit = SubmitField("変更する")
