"""The reference orders service, rebuilt as the anchor for bench/reference.py.

It behaves as the reference Flask service did: Flask + Flask-PyMongo, no validation, `GET /orders`
returns every order, `PUT` writes all four fields (missing ones become null) and answers 200 even
for an absent id. Run by gunicorn with 8 gevent workers, as the reference deployment was.
Only for measurements: never deploy it.
"""

import os

from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, jsonify, request
from flask_pymongo import PyMongo

app = Flask(__name__)
app.config["MONGO_URI"] = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/orders_db")
mongo = PyMongo(app)

FIELDS = ("product", "quantity", "customer_name", "customer_address")


def shown(order):
    order["_id"] = str(order["_id"])
    return order


@app.route("/orders", methods=["GET"])
def list_orders():
    return jsonify({"orders": [shown(o) for o in mongo.db.orders.find()]})


@app.route("/orders/<order_id>", methods=["GET"])
def get_order(order_id):
    try:
        order = mongo.db.orders.find_one({"_id": ObjectId(order_id)})
    except InvalidId:
        return jsonify({"message": "Invalid id"}), 400
    if order is None:
        return jsonify({"message": "Order not found"}), 404
    return jsonify({"order": shown(order)})


@app.route("/orders", methods=["POST"])
def create_order():
    data = request.get_json()
    order = {field: data.get(field) for field in FIELDS}
    order["_id"] = mongo.db.orders.insert_one(dict(order)).inserted_id
    return jsonify({"message": "Order created successfully", "order": shown(order)}), 201


@app.route("/orders/<order_id>", methods=["PUT"])
def update_order(order_id):
    data = request.get_json()
    mongo.db.orders.update_one(
        {"_id": ObjectId(order_id)}, {"$set": {field: data.get(field) for field in FIELDS}}
    )
    return jsonify({"message": "Order updated successfully"})


@app.route("/orders/<order_id>", methods=["DELETE"])
def delete_order(order_id):
    result = mongo.db.orders.delete_one({"_id": ObjectId(order_id)})
    if result.deleted_count == 0:
        return jsonify({"message": "Order not found"}), 404
    return jsonify({"message": "Order deleted successfully"})
